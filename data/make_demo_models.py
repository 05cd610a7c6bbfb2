#!/usr/bin/python3
"""make_demo_models.py: builds the demo and test models of data/ and their sample requests.

Run from anywhere with Debian's XGBoost (python3-xgboost 1.7.4 + numpy):

    /usr/bin/python3 data/make_demo_models.py

Everything is synthetic and seeded, and training runs single-threaded so the trees (and so the
files) are the same on every run and machine with the same XGBoost. It writes:

  models/NAME/model.{json,ubj,bst}  the models (one folder per model, as a KServe model repo)
  requests/NAME.json                a V2 infer body for the model (JSON null = missing value)
  requests/NAME.v1.json             the same rows as a V1 body {"instances": [...]}
  expected/NAME.json                XGBoost's own predictions for those rows:
                                    {"shape": [...], "data": [row-major floats]}
  expected/compat-iris.json         the same for KServe's iris sample in compat/

Expected values come from Booster.predict on a DMatrix built with missing=NaN (the oracle the
C runtime is tested against). Floats are written as the shortest repr of the float32 value
widened to double, so parsing them as double and narrowing to float gives the exact float32.
Request inputs are multiples of 1/64, exact in float32, so every parser reads the same rows.
"""

import json
import os
import shutil
import sys

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))

# Training is single-threaded on purpose: multi-threaded histogram building may sum gradients
# in a different order on a machine with another core count, which changes split gains.
COMMON_PARAMS = {"nthread": 1, "tree_method": "hist", "seed": 0}


def quantize(a):
    """Rounds to multiples of 1/64 (exact in float32 and short in decimal), keeping NaN."""
    return np.round(np.asarray(a, dtype=np.float64) * 64.0) / 64.0


def with_missing(rng, x, fraction):
    x = x.copy()
    x[rng.random(x.shape) < fraction] = np.nan
    return x


def train(params, x, y, rounds, group=None):
    dtrain = xgb.DMatrix(x.astype(np.float32), label=y, missing=np.nan)
    if group is not None:
        dtrain.set_group(group)
    merged = dict(COMMON_PARAMS)
    if params.get("booster") == "gblinear":
        del merged["tree_method"]
    merged.update(params)
    return xgb.train(merged, dtrain, num_boost_round=rounds)


def make_fraud():
    """The benchmark model: binary:logistic, 20 features, 100 trees of depth 6, ~8% NaN."""
    rng = np.random.default_rng(20240101)
    n, f = 6000, 20
    x = rng.normal(size=(n, f))
    w = rng.normal(size=f)
    logit = x @ w * 0.6 + 1.5 * np.sin(x[:, 0] * 2.0) + x[:, 1] * x[:, 2] - 1.0
    # Missingness that carries signal, so the learned default directions matter.
    x = with_missing(rng, x, 0.08)
    logit = logit + np.where(np.isnan(x[:, 3]), 2.0, 0.0)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    booster = train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1,
                     "min_child_weight": 4, "eval_metric": "logloss"}, x, y, 100)
    rows = with_missing(rng, quantize(rng.normal(size=(6, f)) * 1.5), 0.15)
    rows[0, :] = np.nan          # an all-missing row: every split takes its default branch
    return booster, rows


def iris_like(rng, n_per_class):
    """Three clusters with iris-like centres (sepal length/width, petal length/width, cm)."""
    centres = np.array([[5.0, 3.4, 1.5, 0.25], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.55, 2.0]])
    spread = np.array([[0.35, 0.38, 0.17, 0.1], [0.5, 0.31, 0.47, 0.2], [0.63, 0.32, 0.55, 0.27]])
    xs, ys = [], []
    for k in range(3):
        xs.append(centres[k] + rng.normal(size=(n_per_class, 4)) * spread[k])
        ys.append(np.full(n_per_class, k, dtype=np.float32))
    return np.vstack(xs), np.concatenate(ys)


def iris_rows(rng):
    rows = quantize(np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3],
                              [6.0, 2.7, 5.1, 1.6], [5.8, 2.7, 5.1, 1.9]]))
    rows[3, 1] = np.nan
    rows[4, 2] = np.nan
    return rows


def make_iris(objective):
    rng = np.random.default_rng(7)
    x, y = iris_like(rng, 60)
    booster = train({"objective": objective, "num_class": 3, "max_depth": 3, "eta": 0.3,
                     "eval_metric": "mlogloss"}, x, y, 20)
    return booster, iris_rows(rng)


def churn_data(rng):
    n, f = 3000, 8
    x = rng.normal(size=(n, f))
    x[:, 0] = rng.integers(0, 60, size=n)          # tenure in months
    x[:, 1] = np.round(rng.uniform(20, 120, size=n), 2)  # monthly charge
    logit = -0.05 * x[:, 0] + 0.02 * (x[:, 1] - 70) + 0.8 * x[:, 2] - 0.5 * x[:, 3] * x[:, 4]
    x = with_missing(rng, x, 0.03)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return x, y


def churn_rows(rng):
    rows = np.column_stack([rng.integers(0, 60, size=5), rng.uniform(20, 120, size=5),
                            rng.normal(size=(5, 6))])
    rows = quantize(rows)
    rows[1, 5] = np.nan
    rows[3, 0] = np.nan
    return rows


def make_churn(revision):
    rng = np.random.default_rng(31)
    x, y = churn_data(rng)
    if revision == 1:
        params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2}
        rounds = 40
    else:
        params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.1,
                  "subsample": 0.8, "colsample_bytree": 0.8, "lambda": 2.0}
        rounds = 80
    params["eval_metric"] = "logloss"
    booster = train(params, x, y, rounds)
    return booster, churn_rows(np.random.default_rng(32))


def make_regression():
    rng = np.random.default_rng(11)
    n, f = 2000, 6
    x = rng.uniform(-2, 2, size=(n, f))
    y = 3.0 * x[:, 0] - 2.0 * x[:, 1] ** 2 + np.sin(3 * x[:, 2]) + rng.normal(scale=0.1, size=n)
    x = with_missing(rng, x, 0.05)
    booster = train({"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2,
                     "eval_metric": "rmse"}, x, y.astype(np.float32), 50)
    rows = with_missing(rng, quantize(rng.uniform(-2, 2, size=(5, f))), 0.2)
    return booster, rows


def make_ranking():
    rng = np.random.default_rng(13)
    groups, per_group, f = 100, 10, 5
    x = rng.normal(size=(groups * per_group, f))
    relevance = np.clip(np.round(1.5 + x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.3,
                                                                            size=len(x))), 0, 4)
    booster = train({"objective": "rank:pairwise", "max_depth": 4, "eta": 0.3,
                     "eval_metric": "ndcg"}, x, relevance.astype(np.float32), 30,
                    group=[per_group] * groups)
    rows = with_missing(rng, quantize(rng.normal(size=(6, f))), 0.1)
    return booster, rows


def make_linear():
    """A gblinear model: its booster is not a tree one, which the runtime treats apart."""
    rng = np.random.default_rng(17)
    n, f = 1000, 5
    x = rng.normal(size=(n, f))
    y = x @ np.array([1.5, -2.0, 0.5, 0.0, 3.0]) + rng.normal(scale=0.1, size=n)
    x = with_missing(rng, x, 0.05)
    booster = train({"booster": "gblinear", "objective": "reg:squarederror", "eta": 0.5,
                     "eval_metric": "rmse"}, x, y.astype(np.float32), 30)
    rows = with_missing(rng, quantize(rng.normal(size=(5, f))), 0.2)
    return booster, rows


def f32_list(values):
    """float32 values as Python floats (exact), NaN as None."""
    out = []
    for v in np.asarray(values, dtype=np.float32).ravel():
        out.append(None if np.isnan(v) else float(v))
    return out


def dump_json(path, obj):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, separators=(", ", ": "), allow_nan=False)
        fh.write("\n")


def predict_with_dmatrix(booster, rows):
    pred = booster.predict(xgb.DMatrix(np.asarray(rows, dtype=np.float32), missing=np.nan))
    return {"shape": list(pred.shape), "data": f32_list(pred)}


def write_requests(name, rows):
    r, c = rows.shape
    v2 = {"inputs": [{"name": "input-0", "shape": [r, c], "datatype": "FP32",
                      "data": f32_list(rows)}]}
    v1 = {"instances": [f32_list(row) for row in rows]}
    dump_json(os.path.join(HERE, "requests", name + ".json"), v2)
    dump_json(os.path.join(HERE, "requests", name + ".v1.json"), v1)


def save_model(booster, name, filename):
    folder = os.path.join(HERE, "models", name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, filename)
    booster.save_model(path)
    return path


def emit(name, booster, rows, filename="model.json"):
    path = save_model(booster, name, filename)
    # The oracle predicts with the model read back from the written file, which is the
    # thing the runtime loads.
    loaded = xgb.Booster(model_file=path)
    write_requests(name, rows)
    dump_json(os.path.join(HERE, "expected", name + ".json"), predict_with_dmatrix(loaded, rows))


def emit_compat_iris():
    folder = os.path.join(HERE, "compat", "kserve-xgboost-iris")
    with open(os.path.join(folder, "iris-input.json"), encoding="utf-8") as fh:
        rows = np.array(json.load(fh)["inputs"][0]["data"], dtype=np.float64)
    results = []
    for filename in ("model.json", "model.ubj", "model.bst"):
        booster = xgb.Booster(model_file=os.path.join(folder, filename))
        results.append(predict_with_dmatrix(booster, rows))
    if any(r != results[0] for r in results[1:]):
        sys.exit("compat iris: the three model files disagree; write one expected file each")
    dump_json(os.path.join(HERE, "expected", "compat-iris.json"), results[0])


def save_legacy_binary(booster, name):
    """XGBoost 1.7 still writes its deprecated binary format for names not ending in
    .json/.ubj (with a warning); write it through a temporary name to keep the .bst name."""
    folder = os.path.join(HERE, "models", name)
    os.makedirs(folder, exist_ok=True)
    raw = booster.save_raw(raw_format="deprecated")
    with open(os.path.join(folder, "model.bst"), "wb") as fh:
        fh.write(raw)


def main():
    for sub in ("models", "requests", "expected"):
        shutil.rmtree(os.path.join(HERE, sub), ignore_errors=True)
        os.makedirs(os.path.join(HERE, sub))

    booster, rows = make_fraud()
    emit("fraud", booster, rows)

    booster, rows = make_iris("multi:softprob")
    emit("iris", booster, rows)
    emit("iris-ubj", booster, rows, filename="model.ubj")
    save_legacy_binary(booster, "iris-bst")
    loaded = xgb.Booster(model_file=os.path.join(HERE, "models", "iris-bst", "model.bst"))
    write_requests("iris-bst", rows)
    dump_json(os.path.join(HERE, "expected", "iris-bst.json"), predict_with_dmatrix(loaded, rows))

    for revision in (1, 2):
        booster, rows = make_churn(revision)
        emit("churn-v%d" % revision, booster, rows)

    booster, rows = make_iris("multi:softmax")
    emit("softmax", booster, rows)

    booster, rows = make_regression()
    emit("regression", booster, rows)

    booster, rows = make_ranking()
    emit("ranking", booster, rows)

    booster, rows = make_linear()
    emit("linear", booster, rows)

    emit_compat_iris()



if __name__ == "__main__":
    main()
