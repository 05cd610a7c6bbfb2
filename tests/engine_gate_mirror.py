"""Release gates with shadow traffic (mirror: true) and a slow canary, on a real engine.

Canaries are built at test time by tests/gate_models.py (Debian's python3-xgboost):
- shuffled: trained on churn's rows with shuffled labels: fast and never an error, but its
  classes differ from churn-v1's on many rows. With mirror: true it is caught by
  prediction-disagreement during the mirrored iterations, before it gets any live weight:
  clients only ever see the stable revision, and the mirrored answers are counted with
  mirrored="true", never in the client-facing series.
- a healthy retrain (churn-v2) passes the same mirrored phase (its disagreement, measured
  by the engine, is compared with the share computed here from XGBoost's own answers).
- regression (data/models/regression retrained one round longer): its answers differ from
  stable's by 0.07% to 1.5%, so the share of rows past the 1e-3 relative difference is a
  fraction the engine must measure exactly, as computed here from XGBoost's answers.
- slow: 300 trees of depth 8: fails request-duration at its first live step.
The disagreement oracle is XGBoost itself: the expected share of differing classes for the
request rows is computed in this test from the two models' predictions (Python xgboost)."""
import json
import os
import subprocess
import sys
import time

from ksvtest import SRCDIR, Engine, Traffic, check, finish, load_json, model_path, tmpdir

try:
    subprocess.run(["/usr/bin/python3", "-c", "import xgboost, numpy"], check=True,
                   capture_output=True)
except (OSError, subprocess.CalledProcessError):
    print("SKIP: Debian's python3-xgboost is not installed (scripts/deps.sh installs it)")
    sys.exit(77)

work = tmpdir("ksv-gate-mirror-")
built = subprocess.run(["/usr/bin/python3", os.path.join(SRCDIR, "tests", "gate_models.py"), work],
                       capture_output=True, text=True, timeout=600)
if built.returncode != 0:
    print(built.stderr)
check(built.returncode == 0, "canary models built")

ROWS = load_json("requests", "churn-v1.json")
BODY = json.dumps(ROWS)
# 64 rows a request for the slow canary: its cost is in the trees, not the HTTP.
BIG = dict(ROWS)
BIG["inputs"] = [dict(ROWS["inputs"][0])]
n_rows = ROWS["inputs"][0]["shape"][0]
reps = max(1, 64 // n_rows)
BIG["inputs"][0]["data"] = ROWS["inputs"][0]["data"] * reps
BIG["inputs"][0]["shape"] = [n_rows * reps, ROWS["inputs"][0]["shape"][1]]
BIG_BODY = json.dumps(BIG)


def xgb_compare(request, a_dir, b_dir, expr):
    """Evaluates expr (Python, over p[0] and p[1]: XGBoost's own predictions of the two
    models for the request's rows, as float64, and rel: their relative difference) with
    Debian's xgboost; returns its numbers."""
    code = ("import json,sys,numpy as np,xgboost as xgb\n"
            "r=json.load(open(sys.argv[1]))['inputs'][0]\n"
            "x=np.array([np.nan if v is None else v for v in r['data']],dtype=np.float32)"
            ".reshape(r['shape'])\n"
            "p=[xgb.Booster(model_file=f).predict(xgb.DMatrix(x,missing=np.nan))"
            ".astype(np.float64) for f in sys.argv[2:]]\n"
            "rel=np.abs(p[0]-p[1])/np.maximum(np.maximum(np.abs(p[0]),np.abs(p[1])),1e-30)\n"
            "print(*(float(v) for v in (%s)))\n" % expr)
    out = subprocess.run(["/usr/bin/python3", "-c", code,
                          os.path.join(SRCDIR, "data", "requests", request),
                          os.path.join(a_dir, "model.json"), os.path.join(b_dir, "model.json")],
                         capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def expected_disagreement(a_dir, b_dir):
    """Share of churn's request rows whose class differs, by XGBoost's own predictions."""
    return xgb_compare("churn-v1.json", a_dir, b_dir, "[np.mean((p[0]>0.5)!=(p[1]>0.5))]")[0]


def rev(name, path):
    return {"name": name, "runtime": "ksv-xgboost", "storage_uri": path}


def put_model(eng, model, revs):
    st, _, body = eng.request("PUT", "/ksv/v1/models/" + model, admin=True,
                              body={"revisions": revs, "traffic": {revs[0]["name"]: 100}})
    assert st == 202, body
    return eng.wait_applied(model)


def wait_phase(eng, model, phases, timeout):
    deadline = time.time() + timeout
    ro = None
    seen = set()
    while time.time() < deadline:
        st, _, body = eng.request("GET", "/ksv/v1/models/" + model, admin=True)
        ro = body.get("rollout")
        if ro:
            seen.add((ro["step"], ro["set_weight"]))
            if ro["phase"] in phases:
                return ro, seen
        time.sleep(0.1)
    return ro, seen


def metrics(eng):
    return eng.request("GET", "/metrics")[2].splitlines()


eng = Engine(threads=2)
SHUFFLED, SLOW = os.path.join(work, "shuffled"), os.path.join(work, "slow")

# --- wrong but fast: caught in the mirrored phase, before any live weight -----------------
want = expected_disagreement(model_path("churn-v1"), SHUFFLED)
check(want > 0.1, "the shuffled model disagrees with churn-v1 on %.0f%% of the request rows" % (100 * want))
put_model(eng, "wrong", [rev("wrong-00001", model_path("churn-v1")), rev("wrong-00002", SHUFFLED)])
load = Traffic(eng.host, eng.port, "wrong", BODY, rps=100)
st, _, ro = eng.request("PUT", "/ksv/v1/models/wrong/rollout", admin=True, body={
    "canary": "wrong-00002", "interval_s": 1, "threshold": 2, "step_weights": [20, 50],
    "mirror": True, "iterations": 3,
    "metrics": [{"name": "prediction-disagreement", "max": 0.02, "min_requests": 10},
                {"name": "request-success-rate", "min": 99, "min_requests": 10}]})
check(st == 200 and ro["step"] == -3, "a mirrored rollout starts at its first mirrored iteration (%s)" % ro.get("step"))
ro, seen = wait_phase(eng, "wrong", ("Failed", "Succeeded"), 30)
counts = load.stop()
check(ro and ro["phase"] == "Failed" and "prediction-disagreement" in ro["reason"],
      "wrong-but-fast canary Failed on prediction-disagreement: %s" % (ro and ro["reason"]))
check(all(step < 0 and w == 0 for step, w in seen), "it never left the mirrored phase: %s" % sorted(seen))
check(counts[("wrong-00002", 200)] == 0 and sum(counts.values()) == counts[("wrong-00001", 200)],
      "clients only ever got the stable revision (%s)" % dict(counts))
dis = [c for c in ro["checks"] if c["metric"] == "prediction-disagreement"][0]
check(dis["value"] is not None and abs(dis["value"] - want) < 0.02,
      "measured disagreement %.3f matches XGBoost's own %.3f" % (dis["value"] or -1, want))
m = metrics(eng)
mirrored = [l for l in m if l.startswith("ksv_requests_total") and 'revision="wrong-00002"' in l and
            'mirrored="true"' in l]
client = [l for l in m if l.startswith("ksv_requests_total") and 'revision="wrong-00002"' in l and
          "mirrored" not in l]
check(mirrored and int(mirrored[0].split()[-1]) > 20, "mirrored answers counted as mirrored: %s" % mirrored)
check(client and all(int(l.split()[-1]) == 0 for l in client), "and never in the client-facing series: %s" % client)
check(any(l.startswith('ksv_prediction_disagreement{model="wrong",revision="wrong-00002"}') for l in m),
      "ksv_prediction_disagreement is exported")
st, _, state = eng.request("GET", "/ksv/v1/models/wrong", admin=True)
check(state["effective_traffic"] == {"wrong-00001": 100}, "stable keeps 100%")

# --- a healthy retrain passes the mirrored phase and goes live ------------------------------
want_ok = expected_disagreement(model_path("churn-v1"), model_path("churn-v2"))
put_model(eng, "good", [rev("good-00001", model_path("churn-v1")), rev("good-00002", model_path("churn-v2"))])
load = Traffic(eng.host, eng.port, "good", BODY, rps=100)
eng.request("PUT", "/ksv/v1/models/good/rollout", admin=True, body={
    "canary": "good-00002", "interval_s": 1, "threshold": 2, "step_weights": [50],
    "mirror": True, "iterations": 2,
    "metrics": [{"name": "prediction-disagreement", "max": max(0.05, want_ok + 0.05), "min_requests": 10},
                {"name": "request-success-rate", "min": 99, "min_requests": 10}]})
ro, seen = wait_phase(eng, "good", ("Failed", "Succeeded"), 40)
load.stop()
check(ro and ro["phase"] == "Succeeded", "the healthy canary passes mirroring and is promoted (%s)" % (ro and ro["reason"]))
check((-2, 0) in seen and (-1, 0) in seen and (0, 50) in seen, "mirrored iterations, then 50%%: %s" % sorted(seen))

# --- regression: a row differs when its relative difference exceeds 1e-3 ----------------------
REG = os.path.join(work, "regression")
REG_BODY = json.dumps(load_json("requests", "regression.json"))
want_reg, rel_min, rel_max = xgb_compare(
    "regression.json", model_path("regression"), REG,
    "[np.mean(rel>1e-3), rel.min(), rel.max()]")
check(0 < want_reg < 1 and rel_min < 1e-3 < rel_max,
      "the retrained regression differs by %.2g..%.2g relatively: %.0f%% of rows past 1e-3" %
      (rel_min, rel_max, 100 * want_reg))
put_model(eng, "reg", [rev("reg-00001", model_path("regression")), rev("reg-00002", REG)])
load = Traffic(eng.host, eng.port, "reg", REG_BODY, rps=100)
eng.request("PUT", "/ksv/v1/models/reg/rollout", admin=True, body={
    "canary": "reg-00002", "interval_s": 1, "threshold": 2, "step_weights": [50],
    "mirror": True, "iterations": 2,
    "metrics": [{"name": "prediction-disagreement", "max": want_reg + 0.05, "min_requests": 10}]})
ro, seen = wait_phase(eng, "reg", ("Failed", "Succeeded"), 40)
load.stop()
check(ro and ro["phase"] == "Succeeded", "a close regression canary passes its mirrored phase (%s)" %
      (ro and ro["reason"]))
st, _, page = eng.request("GET", "/ksv/v1/events?since=0&limit=5000", admin=True)
values = [c["value"] for e in page["events"] if e["model"] == "reg" and e["kind"] == "gate-check"
          for c in (e.get("figures") or {}).get("checks", [])
          if c["metric"] == "prediction-disagreement" and c["value"] is not None]
check(len(values) >= 2 and all(abs(v - want_reg) < 1e-6 for v in values),
      "each mirrored window measured %.2f, the 1e-3 rule applied to XGBoost's own answers: %s" %
      (want_reg, values))

# --- slow canary: fails request-duration at its first live step ----------------------------
put_model(eng, "slow", [rev("slow-00001", model_path("churn-v1")), rev("slow-00002", SLOW)])
load = Traffic(eng.host, eng.port, "slow", BIG_BODY, rps=60)
eng.request("PUT", "/ksv/v1/models/slow/rollout", admin=True, body={
    "canary": "slow-00002", "interval_s": 1, "threshold": 2, "step_weights": [50],
    "metrics": [{"name": "request-duration", "max": 1, "min_requests": 10},
                {"name": "request-success-rate", "min": 99, "min_requests": 10}]})
ro, seen = wait_phase(eng, "slow", ("Failed", "Succeeded"), 40)
counts = load.stop()
check(ro and ro["phase"] == "Failed" and "request-duration" in ro["reason"],
      "slow canary Failed on request-duration: %s" % (ro and ro["reason"]))
dur = [c for c in (ro or {}).get("checks", []) if c["metric"] == "request-duration"]
check(dur and dur[0]["value"] and dur[0]["value"] > 1, "its P99 was over 1 ms: %s" % dur)
check(sum(n for (r, s), n in counts.items() if s != 200) == 0, "every request answered 200 (%s)" % dict(counts))
eng.stop()
finish()
