"""LightGBM text models (Booster.save_model) served by ksv-forest through a real ksv-engine,
compared with LightGBM's own Booster.predict on the same inputs (DESIGN.md §13).

Trained here with PyPI's lightgbm (scripts/venv-lightgbm.sh, a cached venv outside the
tree): a binary model with a categorical feature (bitset splits) and NaN missing values,
saved as model.bst in a folder as KServe names it; a 3-class multiclass model saved as
model.txt; a regression without missing-value handling (missing type None: NaN is 0) and
one with zero_as_missing (missing type Zero); and one model per other output transform
(poisson, multiclassova with sigmoid 0.7, cross_entropy, cross_entropy_lambda, regression with
reg_sqrt, and boosting=rf's average_output). The inputs mix NaN, zeros, values within
1e-35 of 0, every split threshold and its float neighbours, negative, huge and fractional
categories. The engine answers FP32; LightGBM predicts in double from the same float32
values: every answer must be within 1e-6 relative (issue 15's bar), and is in fact
LightGBM's double rounded to float32, bit for bit (docs/FOREST.md claims it; checked). V2 JSON and V1
are both checked; runtime `auto` (the default) picks ksv-forest and says why; ksv-xgboost,
a linear tree and a truncated file are refused with the reason. Then `ksv apply` of KServe
manifests with modelFormat lightgbm (no runtime, and KServe's kserve-lgbserver) on a local
node: served by ksv-forest, answers equal to Booster.predict.

Run by the suite's python3, this script re-executes itself with the venv's python; without
the venv (no route to PyPI) it is skipped (77) and says so."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ksvtest import reexec_in_venv  # noqa: E402

reexec_in_venv("venv-lightgbm.sh", "KSV_LIGHTGBM_VENV", "lightgbm")

import http.client  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402

from ksvtest import (ENGINE, Engine, check, finish, ksv_cli_merged, stop_engine, tmpdir,  # noqa: E402
                     write_file)

work = tmpdir("ksv-lightgbm-")
rng = np.random.default_rng(7)
N_FEAT = 6


def training_data(n):
    X = rng.normal(size=(n, N_FEAT))
    X[:, 3] = rng.integers(0, 20, size=n)           # a categorical feature: codes 0..19
    X[:, 4] = np.where(rng.random(n) < 0.3, 0.0, X[:, 4])  # many exact zeros
    X[rng.random(X.shape) < 0.08] = np.nan
    return X


def save(booster, name, filename):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    booster.save_model(os.path.join(d, filename))
    return d


X = training_data(2000)
x3 = np.nan_to_num(X[:, 3], nan=0.0)
logit = np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) + np.isin(x3, [2, 5, 7, 11, 13]) * 2.0 - 1.0
y_bin = (logit + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
y_cls = np.digitize(np.nan_to_num(X[:, 2]) + np.isin(x3, [1, 4, 9]) * 1.5, [-0.5, 0.7])
y_reg = 3 * np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 4]) ** 2 + (x3 % 4)

common = {"verbose": -1, "num_leaves": 15, "min_data_in_leaf": 5, "seed": 1, "deterministic": True}
models = {
    "lgb-binary": (lgb.train(dict(common, objective="binary", cat_smooth=1, min_data_per_group=5),
                             lgb.Dataset(X, y_bin, categorical_feature=[3]), 40), "model.bst"),
    "lgb-multi": (lgb.train(dict(common, objective="multiclass", num_class=3),
                            lgb.Dataset(X, y_cls, categorical_feature=[3]), 15), "model.txt"),
    "lgb-reg-none": (lgb.train(dict(common, objective="regression", use_missing=False),
                               lgb.Dataset(X, y_reg), 30), "model.txt"),
    "lgb-reg-zero": (lgb.train(dict(common, objective="regression", zero_as_missing=True),
                               lgb.Dataset(X, y_reg), 30), "model.txt"),
    # Every other output transform ksv-forest claims (docs/FOREST.md), a few trees each.
    "lgb-poisson": (lgb.train(dict(common, objective="poisson"), lgb.Dataset(X, np.abs(y_reg)), 8), "model.txt"),
    "lgb-ova": (lgb.train(dict(common, objective="multiclassova", num_class=3, sigmoid=0.7),
                          lgb.Dataset(X, y_cls), 5), "model.txt"),
    "lgb-xent": (lgb.train(dict(common, objective="cross_entropy"),
                           lgb.Dataset(X, 1 / (1 + np.exp(-y_reg / 4))), 8), "model.txt"),
    "lgb-xentlambda": (lgb.train(dict(common, objective="cross_entropy_lambda"),
                                 lgb.Dataset(X, 1 / (1 + np.exp(-y_reg / 4))), 8), "model.txt"),
    "lgb-sqrt": (lgb.train(dict(common, objective="regression", reg_sqrt=True), lgb.Dataset(X, y_reg - 2), 8),
                 "model.txt"),
    "lgb-rf": (lgb.train(dict(common, boosting="rf", objective="regression", bagging_fraction=0.7,
                              bagging_freq=1), lgb.Dataset(X, y_reg), 6), "model.txt"),
}
dirs = {name: save(b, name, fn) for name, (b, fn) in models.items()}
# Notes beside a model do not make its folder ambiguous: only model.txt counts as a .txt model.
write_file(dirs["lgb-multi"], "notes.txt", "trained by tests/engine_lightgbm.py\n")
texts = {name: open(os.path.join(dirs[name], fn)).read() for name, (b, fn) in models.items()}
check("num_cat=0" not in texts["lgb-binary"].split("Tree=0")[1].split("Tree=1")[0] or
      any(("num_cat=" in t and "num_cat=0" not in t) for t in texts["lgb-binary"].split("Tree=")),
      "the binary model has categorical (bitset) splits")
check("decision_type=" in texts["lgb-reg-zero"] and
      any(int(v) >> 2 & 3 == 1 for line in texts["lgb-reg-zero"].splitlines()
          if line.startswith("decision_type=") for v in line[14:].split()),
      "the zero_as_missing model has missing type Zero splits")


header = {name: t.split("\nTree=")[0].splitlines() for name, t in texts.items()}
check("objective=regression sqrt" in header["lgb-sqrt"] and "average_output" in header["lgb-rf"] and
      "objective=multiclassova num_class:3 sigmoid:0.7" in header["lgb-ova"],
      "the transform models carry what they test: sqrt, average_output, sigmoid:0.7")


def thresholds(booster):
    """Every numerical split threshold a float can come near, per feature (JSON has no inf)."""
    found = {}

    def walk(node):
        if "split_feature" in node:
            if node.get("decision_type") == "<=" and abs(node["threshold"]) < 3e38:
                found.setdefault(node["split_feature"], []).append(node["threshold"])
            walk(node["left_child"])
            walk(node["right_child"])
    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return found


def probe_rows(booster, n):
    """Rows that hit every edge LightGBM's rules have, as float32 values."""
    X = training_data(n).astype(np.float32)
    ths = thresholds(booster)
    for i in range(n):
        for f, th in ths.items():
            if rng.random() < 0.5:
                t = np.float32(th[rng.integers(len(th))])
                X[i, f] = [t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))][i % 3]
    specials = [0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 2e-35, -0.5, -1.0, -7.0, 2.9, 19.5, 31.0, 32.0,
                40.0, 1e10, -1e10, 3e38, -3e38, 2147483648.0, np.nan]
    for i, v in enumerate(specials):
        X[i % n, :] = v
        X[(i + 7) % n, 3] = v
    return X


def request_body(X):
    flat = [None if math.isnan(v) else float(v) for v in X.reshape(-1)]
    return {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": list(X.shape), "data": flat}]}


def close(got, want):
    return abs(got - want) <= 1e-6 * abs(want) + 1e-30


args = []
for name, d in dirs.items():
    args += ["--model", "%s=%s" % (name, d)]
bad_dir = os.path.join(work, "bad")
os.makedirs(bad_dir)
with open(os.path.join(bad_dir, "truncated.txt"), "w") as f:
    f.write(texts["lgb-reg-none"].split("Tree=20")[0])  # a download cut short between trees
args += ["--model", "lgb-truncated=%s" % os.path.join(bad_dir, "truncated.txt")]
args += ["--model", "lgb-on-xgboost=%s,runtime=ksv-xgboost" % dirs["lgb-reg-none"]]
lin = lgb.train(dict(common, objective="regression", linear_tree=True),
                lgb.Dataset(np.nan_to_num(X), y_reg), 3)
lin_dir = save(lin, "lgb-linear", "model.txt")
args += ["--model", "lgb-linear=%s" % lin_dir]
eng = Engine(*args, log_level="info")

for name, (booster, fn) in models.items():
    check(eng.wait_ready(name), "%s (%s) loads" % (name, fn))
    st, _, meta = eng.request("GET", "/v2/models/" + name)
    check(st == 200 and meta["parameters"]["runtime"] == "ksv-forest" and meta["platform"] == "lightgbm",
          "%s: runtime auto chose ksv-forest, platform lightgbm (%s, %s)" % (name, meta.get("parameters"),
                                                                          meta.get("platform")))
    X = probe_rows(booster, 300)
    want = booster.predict(X.astype(np.float64))
    st, _, ans = eng.request("POST", "/v2/models/%s/infer" % name, request_body(X))
    got = np.array(ans["outputs"][0]["data"], dtype=np.float64) if st == 200 else None
    shape = ans["outputs"][0]["shape"] if st == 200 else None
    check(st == 200 and shape == list(want.shape), "%s V2 answer shape %s = LightGBM's %s" %
          (name, shape, list(want.shape)))
    if st == 200:
        got = got.reshape(want.shape)
        bad = [(i, float(g), float(w)) for i, (g, w) in enumerate(zip(got.reshape(-1), want.reshape(-1)))
               if not close(g, w)]
        check(not bad, "%s: %d V2 answers within 1e-6 relative of Booster.predict (first misses: %s)"
              % (name, want.size, bad[:3]))
        same = int(np.sum(got.astype(np.float32) == want.astype(np.float32)))
        check(same == want.size, "%s: %d of %d answers are LightGBM's double rounded to float32, "
              "bit for bit (docs/FOREST.md)" % (name, same, want.size))
    rows = [[None if math.isnan(v) else float(v) for v in row] for row in X[:40]]
    st, _, ans = eng.request("POST", "/v1/models/%s:predict" % name, {"instances": rows})
    got = np.array(ans["predictions"], dtype=np.float64) if st == 200 else None
    check(st == 200 and got.shape == want[:40].shape and
          all(close(g, w) for g, w in zip(got.reshape(-1), want[:40].reshape(-1))),
          "%s: V1 predictions equal Booster.predict" % name)

st, _, meta = eng.request("GET", "/v2/models/lgb-multi")
check(st == 200 and meta["outputs"][0]["shape"][-1] == 3, "the multiclass model answers 3 probabilities per row")
st, _, ans = eng.request("POST", "/v2/models/lgb-binary/infer",
                         {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})
check(st == 400 and "6 features" in ans.get("error", ""), "a row of the wrong width is a 400 naming the width: %s" % ans)
for name, words in (("lgb-truncated", "end of trees"), ("lgb-on-xgboost", "LightGBM"),
                    ("lgb-linear", "linear")):
    r = eng.revision_settled(name)
    check(r["state"] == "failed" and words in r.get("error", ""),
          "%s is refused with the reason: %s" % (name, r.get("error", "")[:160]))
log = eng.log_text()
check("LightGBM" in log and "ksv-forest" in log, "the log says why LightGBM models went to ksv-forest")
check(eng.stop() == 0, "SIGTERM: exit 0")

# KServe manifests through ksv: modelFormat lightgbm with no runtime, and with KServe's own
# kserve-lgbserver, both served by ksv-forest on a local node.
node_dir = os.path.join(work, "node")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=ENGINE, USER="tester")
ksv = ksv_cli_merged(env, timeout=120)
manifest = write_file(work, "lgb.yaml", """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: churn-lgb
spec:
  predictor:
    model:
      modelFormat:
        name: lightgbm
      storageUri: %s
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris-lgb
spec:
  predictor:
    model:
      modelFormat:
        name: lightgbm
      runtime: kserve-lgbserver
      storageUri: %s
""" % (dirs["lgb-binary"], dirs["lgb-multi"]))
try:
    rc, out = ksv("node", "add", "local", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add local: " + out[-200:])
    rc, out = ksv("apply", "-f", manifest, "--timeout", "60")
    check(rc == 0 and "2 models in effect" in out and "kserve-lgbserver mapped to ksv-forest" in out,
          "ksv apply serves both LightGBM manifests (kserve-lgbserver mapped): " + out.strip()[-400:])
    rc, out = ksv("get", "revisions", "churn-lgb")
    check(rc == 0 and "ksv-forest" in out, "the revision runs on ksv-forest: " + out.strip()[-200:])
    with open(os.path.join(node_dir, "address")) as f:
        host, port = f.read().strip().rsplit(":", 1)
    node = http.client.HTTPConnection(host, int(port), timeout=30)
    for name, key in (("churn-lgb", "lgb-binary"), ("iris-lgb", "lgb-multi")):
        booster = models[key][0]
        X = probe_rows(booster, 50)
        want = booster.predict(X.astype(np.float64))
        node.request("POST", "/v2/models/%s/infer" % name, body=json.dumps(request_body(X)),
                     headers={"Content-Type": "application/json"})
        r = node.getresponse()
        ans = json.loads(r.read())
        got = np.array(ans["outputs"][0]["data"], dtype=np.float64).reshape(want.shape) if r.status == 200 else None
        check(got is not None and all(close(g, w) for g, w in zip(got.reshape(-1), want.reshape(-1))),
              "%s through ksv apply equals Booster.predict (%d answers)" % (name, want.size))
    node.close()
finally:
    stop_engine(node_dir)
finish()
