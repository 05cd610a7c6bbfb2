"""Real MLServer through ksv (docs/OPERATIONS.md): an sklearn classifier and a LightGBM model trained
here (tests/data/train_tabular.py, in the runtimes venv that scripts/runtimes.sh installs),
applied as InferenceServices with `ksv apply`; the shipped kserve-mlserver runtime is chosen
by model format (sklearn) and by name (lightgbm). Answers through the engine equal the
libraries' own predictions, model_version is the ksv revision, the requests show in
/metrics and the fine histograms, `ksv history` has the applies, and the engine's SIGTERM
stops the MLServer processes."""
import http.client
import json
import os
import signal
import subprocess
import time

from ksvtest import ENGINE, ksv_cli_merged, SRCDIR, check, finish, lock_pid, tmpdir

work = tmpdir("ksv-mlserver-")
node_dir = os.path.join(work, "node")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=ENGINE, USER="tester")
venv = subprocess.run(["sh", os.path.join(SRCDIR, "scripts", "runtimes.sh"), "path"],
                      capture_output=True, text=True).stdout.strip()
mlserver = os.path.join(venv, "bin", "mlserver")


ksv = ksv_cli_merged(env, timeout=300)


def call(method, path, body=None, admin=False):
    with open(os.path.join(node_dir, "address")) as f:
        addr = f.read().strip()
    h = {"Content-Type": "application/json"}
    if admin:
        with open(os.path.join(node_dir, "token")) as f:
            h["Authorization"] = "Bearer " + f.read().strip()
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=60)
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, {"raw": data.decode("utf-8", "replace")}


def mlserver_pids():
    out = subprocess.run(["pgrep", "-f", "mlserver start " + work], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


check(os.access(mlserver, os.X_OK), "MLServer is installed in %s (scripts/runtimes.sh install)" % venv)
try:
    r = subprocess.run([os.path.join(venv, "bin", "python"), os.path.join(SRCDIR, "tests", "data", "train_tabular.py"),
                        work], capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "trained an sklearn and a LightGBM model: " + r.stderr[-300:])
    with open(os.path.join(work, "expected.json")) as f:
        expected = json.load(f)
    manifest = os.path.join(work, "models.yaml")
    with open(manifest, "w") as f:
        f.write("""\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris-sk
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: %(w)s/sklearn
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: value-lgb
spec:
  predictor:
    model:
      modelFormat:
        name: lightgbm
      runtime: kserve-mlserver
      protocolVersion: v2
      storageUri: %(w)s/lightgbm
""" % {"w": work})
    rc, out = ksv("node", "add", "local", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add local")
    t0 = time.time()
    rc, out = ksv("apply", "-f", manifest, "--timeout", "240")
    check(rc == 0 and "2 models in effect" in out, "both models served by MLServer in %.1f s: %s" %
          (time.time() - t0, out.strip()))
    rc, out = ksv("get", "revisions", "iris-sk")
    check(rc == 0 and "kserve-mlserver" in out, "the shipped kserve-mlserver runtime was chosen by format")

    X = expected["X"]
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [len(X), 4],
                        "data": [v for row in X for v in row]}]}
    st, ans = call("POST", "/v2/models/iris-sk/infer", body)
    got = ans.get("outputs", [{}])[0].get("data") if st == 200 else None
    check(got == expected["sklearn"], "sklearn through ksv and MLServer equals clf.predict: %s vs %s" %
          (got, expected["sklearn"]))
    check(ans.get("model_version") == "iris-sk-00001" and ans.get("model_name") == "iris-sk",
          "model_version is the ksv revision: %s" % ans.get("model_version"))
    st, ans = call("POST", "/v2/models/value-lgb/infer", body)
    got = ans.get("outputs", [{}])[0].get("data") if st == 200 else None
    check(got is not None and len(got) == len(expected["lightgbm"]) and
          all(abs(a - b) <= 1e-9 * max(1, abs(b)) for a, b in zip(got, expected["lightgbm"])),
          "LightGBM through ksv and MLServer equals booster.predict: %s vs %s" % (got, expected["lightgbm"]))
    st, ans = call("POST", "/v2/models/value-lgb/infer", {"inputs": [{"name": "x", "datatype": "FP64",
                                                                       "shape": [1, 3], "data": [1, 2, 3]}]})
    check(400 <= st < 600 and isinstance(ans, dict) and ("error" in ans or "detail" in ans),
          "a bad input comes back from MLServer as a JSON error: %d %s" % (st, str(ans)[:200]))

    st, metrics = call("GET", "/metrics")
    text = metrics.get("raw", "")
    check('ksv_requests_total{model="iris-sk",revision="iris-sk-00001",code="200"} 1' in text,
          "the forwarded request is counted in /metrics")
    check('ksv_runtime_restarts_total{model="value-lgb",revision="value-lgb-00001"} 0' in text,
          "ksv_runtime_restarts_total is exported per revision")
    st, hist = call("GET", "/ksv/v1/histograms", admin=True)
    series = {s["revision"]: s for s in hist.get("series", [])}
    check(series.get("value-lgb-00001", {}).get("codes", {}).get("200") == 1,
          "the fine histograms have the forwarded requests")
    rc, out = ksv("history")
    check(rc == 0 and "iris-sk" in out and "value-lgb" in out, "history has both applies")

    pids = mlserver_pids()
    check(len(pids) >= 2, "two MLServer processes run: %s" % pids)
    engine = lock_pid(node_dir)
    os.kill(engine, signal.SIGTERM)
    deadline = time.time() + 60
    while time.time() < deadline and (mlserver_pids() or lock_pid(node_dir)):
        time.sleep(0.2)
    check(not mlserver_pids(), "the engine's SIGTERM stops MLServer (SIGTERM to its group, then SIGKILL)")
finally:
    for p in [lock_pid(node_dir)] + mlserver_pids():
        try:
            if p:
                os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
finish()
