"""Scale to zero on a real ksv-engine (docs/OPERATIONS.md, "Scale to zero").

1. A revision with min_replicas 0 and a 3 s window unloads after idling: state
   scaled-to-zero, ksv_model_memory_bytes 0, readiness and metadata still 200. A model without
   min_replicas 0 (and a 1 s window) stays loaded. Then 50 concurrent requests all get 200
   with XGBoost's own answers, and exactly one cold start is counted.
2. A second engine whose loads take 3 s (KSV_TEST_LOAD_DELAY_MS holds the load open), with a
   cold-start queue of 5: 50 concurrent requests during the cold start give 5 answers 200 and
   45 fast 503s with Retry-After; nothing hangs. A request whose revision timeout (1 s) is
   shorter than the load gets 503 with Retry-After when its timeout passes. SIGTERM while
   requests wait for a cold start: each is answered and the engine exits 0.
3. The same through ksv: a KServe manifest with minReplicas 0 and Knative's window
   annotation, applied to a local node, reaches the engine's revision settings, and the
   model scales to zero there; changing only the annotation changes the engine's window
   without a new revision.
"""
import json
import os
import re
import signal
import subprocess
import threading
import time

from ksvtest import (ksv_cli, DATA, ENGINE, TOP, Engine, check, finish, load_json,
                     max_abs_diff, model_path, stop_engine, tmpdir)

FRAUD_REQ = json.dumps(load_json("requests", "fraud.json"))
FRAUD_WANT = load_json("expected", "fraud.json")["data"]  # written by XGBoost itself
CHURN_REQ = json.dumps(load_json("requests", "churn-v1.json"))


def rev(name, uri, **settings):
    r = {"name": name, "runtime": "ksv-xgboost", "storage_uri": uri}
    if settings:
        r["settings"] = settings
    return r


def metric(eng, name, **labels):
    """The value of one series of /metrics, or None."""
    st, _, text = eng.request("GET", "/metrics")
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)\{([^}]*)\} (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted(m.group(2).split(","))) == want:
            return float(m.group(3))
    return None


def revision_state(eng, model):
    st, _, body = eng.request("GET", "/ksv/v1/models/" + model, admin=True)
    return body["revisions"][0] if st == 200 else None


def wait_state(eng, model, state, timeout):
    deadline = time.time() + timeout
    r = None
    while time.time() < deadline:
        r = revision_state(eng, model)
        if r and r["state"] == state:
            return r
        time.sleep(0.05)
    return r


def burst(eng, model, n, body, timeout=30):
    """n requests at once, each on its own connection opened beforehand; returns
    [(status, headers, payload, seconds)] in no particular order, None for a hung one."""
    results = [None] * n
    conns = [eng.conn(timeout) for _ in range(n)]
    for c in conns:
        c.connect()
    gate = threading.Barrier(n)

    def one(i):
        gate.wait()
        t0 = time.time()
        try:
            st, hdrs, payload = eng.request("POST", "/v2/models/%s/infer" % model, body,
                                            headers={"Content-Type": "application/json"},
                                            conn=conns[i])
            results[i] = (st, hdrs, payload, time.time() - t0)
        except OSError as e:
            results[i] = (0, {}, str(e), time.time() - t0)
        finally:
            conns[i].close()

    threads = [threading.Thread(daemon=True, target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return results


# ------------------------------------------------------------- 1. idle, unload, cold start
eng = Engine(threads=2)
st, _, _ = eng.request("PUT", "/ksv/v1/models/fraud", {
    "revisions": [rev("fraud-00001", model_path("fraud"), min_replicas=0)],
    "scale_window_s": 3}, admin=True)
check(st == 202, "PUT fraud with min_replicas 0 and a 3 s window")
st, _, _ = eng.request("PUT", "/ksv/v1/models/churn", {
    "revisions": [rev("churn-00001", model_path("churn-v1"))], "scale_window_s": 1}, admin=True)
check(st == 202, "PUT churn without min_replicas (KServe's default 1) and a 1 s window")
eng.wait_applied("fraud")
eng.wait_applied("churn")
st, _, resp = eng.request("POST", "/v2/models/fraud/infer", FRAUD_REQ)
last_request = time.time()
check(st == 200 and max_abs_diff(resp["outputs"][0]["data"], FRAUD_WANT) < 1e-6,
      "fraud serves XGBoost's answers while loaded")
loaded_mem = metric(eng, "ksv_model_memory_bytes", model="fraud", revision="fraud-00001",
                    device="cpu")
check(loaded_mem is not None and loaded_mem > 100 * 1024,
      "ksv_model_memory_bytes of the loaded fraud revision is measured: %s bytes" % loaded_mem)
churn_mem = metric(eng, "ksv_model_memory_bytes", model="churn", revision="churn-00001",
                   device="cpu")
check(churn_mem and churn_mem > 0, "churn's memory is measured too: %s bytes" % churn_mem)

r = wait_state(eng, "fraud", "scaled-to-zero", 20)
idle = time.time() - last_request
check(r and r["state"] == "scaled-to-zero",
      "fraud is scaled-to-zero after idling (%.1f s): %s" % (idle, r and r["state"]))
check(idle >= 2.9, "not before its 3 s window: %.2f s" % idle)
check(r and r["memory_bytes"] == 0, "its admin state reports 0 bytes held")
check(metric(eng, "ksv_model_memory_bytes", model="fraud", revision="fraud-00001",
             device="cpu") == 0, "ksv_model_memory_bytes drops to 0")
check(metric(eng, "ksv_model_ready", model="fraud", revision="fraud-00001") == 0,
      "ksv_model_ready says it holds no runtime")
st, _, body = eng.request("GET", "/v2/models/fraud/ready")
check(st == 200 and body["ready"] is True, "readiness still 200 while scaled to zero")
st, _, _ = eng.request("GET", "/v2/health/ready")
check(st == 200, "server readiness still 200")
st, _, body = eng.request("GET", "/v2/models/fraud")
check(st == 200 and body["inputs"][0]["shape"] == [-1, 20],
      "metadata still 200 with the model's shape: %s" % body)
st, _, body = eng.request("GET", "/v1/models/fraud")
check(st == 200 and body["ready"] is True, "V1 readiness 200 too")
c = revision_state(eng, "churn")
check(c["state"] == "ready" and c["memory_bytes"] > 0,
      "churn (min_replicas absent, idle > its window) is never unloaded: %s" % c["state"])
check(metric(eng, "ksv_cold_starts_total", model="fraud", revision="fraud-00001") == 0,
      "no cold start counted yet")

# A longer window from here on (the model's setting; the revision stays as it is), so that
# the figures read after the burst cannot race the next scale to zero on a slow machine.
st, _, _ = eng.request("PUT", "/ksv/v1/models/fraud", {
    "revisions": [rev("fraud-00001", model_path("fraud"), min_replicas=0)],
    "scale_window_s": 600}, admin=True)
check(st == 202 and revision_state(eng, "fraud")["state"] == "scaled-to-zero",
      "a new window leaves the scaled-to-zero revision as it is")
results = burst(eng, "fraud", 50, FRAUD_REQ)
ok = [x for x in results if x and x[0] == 200]
right = [x for x in ok if max_abs_diff(x[2]["outputs"][0]["data"], FRAUD_WANT) < 1e-6
         and x[1].get("ksv-revision") == "fraud-00001"]
check(len(ok) == 50, "50 concurrent requests to the scaled-to-zero revision: all 200 (%d; others %s)"
      % (len(ok), sorted(set((x[0], str(x[2])[:80]) for x in results if x and x[0] != 200))))
check(len(right) == 50, "all 50 answers are XGBoost's own, from fraud-00001")
check(metric(eng, "ksv_cold_starts_total", model="fraud", revision="fraud-00001") == 1,
      "exactly one cold start counted")
check(metric(eng, "ksv_cold_start_duration_seconds_count", model="fraud",
             revision="fraud-00001") == 1, "ksv_cold_start_duration_seconds observed it")
check(metric(eng, "ksv_cold_start_queue_depth", model="fraud", revision="fraud-00001") == 0,
      "the queue is empty afterwards")
r = revision_state(eng, "fraud")
check(r["state"] == "ready" and r["memory_bytes"] > 0 and r["cold_starts"] == 1,
      "fraud is ready again and holds memory: %s" % {k: r.get(k) for k in
                                                      ("state", "memory_bytes", "cold_starts")})
slowest = max(x[3] for x in ok) if ok else 0
print("   cold start seen by the slowest of 50 clients: %.1f ms" % (slowest * 1000))
st, hdrs, resp = eng.request("POST", "/v2/models/fraud/versions/fraud-00001/infer", FRAUD_REQ)
check(st == 200, "a request pinned to the revision works after the cold start")
check(eng.stop() == 0, "engine 1 exits 0 on SIGTERM")

# -------------------------------------------------- 2. queue overflow during a slow load
LOAD_S = 3.0
slow = Engine(threads=2, extra_env={"KSV_TEST_LOAD_DELAY_MS": str(int(LOAD_S * 1000))})
st, _, _ = slow.request("PUT", "/ksv/v1/models/fraud", {
    "revisions": [rev("fraud-00001", model_path("fraud"), min_replicas=0)],
    "scale_window_s": 1, "cold_start_queue": 5}, admin=True)
st2, _, _ = slow.request("PUT", "/ksv/v1/models/churn", {
    "revisions": [rev("churn-00001", model_path("churn-v1"), min_replicas=0, timeout_ms=1000)],
    "scale_window_s": 1}, admin=True)
check(st == 202 and st2 == 202, "PUT fraud (queue 5) and churn (timeout 1 s) on a slow-loading engine")
check(wait_state(slow, "fraud", "scaled-to-zero", 30)["state"] == "scaled-to-zero",
      "fraud loaded (slowly), idled and scaled to zero")
t0 = time.time()
results = burst(slow, "fraud", 50, FRAUD_REQ, timeout=30)
took = time.time() - t0
hung = [x for x in results if x is None]
ok = [x for x in results if x and x[0] == 200]
refused = [x for x in results if x and x[0] == 503]
check(not hung and took < 25, "no request hung (burst took %.1f s)" % took)
check(len(ok) == 5, "5 requests waited in the queue and got 200 (%d)" % len(ok))
check(all(max_abs_diff(x[2]["outputs"][0]["data"], FRAUD_WANT) < 1e-6 for x in ok),
      "their answers are XGBoost's own")
check(len(refused) == 45, "the other 45 got 503 (%d; statuses %s)"
      % (len(refused), sorted(set(x[0] for x in results if x))))
check(all(x[1].get("retry-after", "").isdigit() and int(x[1]["retry-after"]) >= 1 for x in refused),
      "every 503 carries Retry-After")
fast = max((x[3] for x in refused), default=99)
check(fast < LOAD_S / 2, "the 503s are fast: slowest %.0f ms while the load takes %.0f s"
      % (fast * 1000, LOAD_S))
check(all("queue is full" in x[2]["error"] for x in refused), "and say the queue is full")
check(min((x[3] for x in ok), default=0) >= LOAD_S * 0.9,
      "the queued ones waited for the whole load, not for a half-loaded model")

check(wait_state(slow, "churn", "scaled-to-zero", 30)["state"] == "scaled-to-zero",
      "churn scaled to zero too")
t0 = time.time()
st, hdrs, body = slow.request("POST", "/v2/models/churn/infer", CHURN_REQ, timeout=30)
waited = time.time() - t0
check(st == 503 and hdrs.get("retry-after") and "within" in body.get("error", ""),
      "a request whose 1 s timeout ends before the 3 s cold start: 503 + Retry-After (%s %s)"
      % (st, body))
check(0.9 <= waited < LOAD_S, "answered when its timeout passed: %.2f s" % waited)
deadline = time.time() + 30
r = revision_state(slow, "churn")
while time.time() < deadline and r["cold_starts"] < 1:
    time.sleep(0.05)
    r = revision_state(slow, "churn")
check(r["cold_starts"] == 1, "the cold start it began still finishes (counted)")

# SIGTERM while requests wait for a cold start: each gets an answer, exit 0.
check(wait_state(slow, "fraud", "scaled-to-zero", 30)["state"] == "scaled-to-zero",
      "fraud scaled to zero again")
answers = []


def late(i):
    try:
        answers.append(slow.request("POST", "/v2/models/fraud/infer", FRAUD_REQ, timeout=30)[0])
    except OSError as e:
        answers.append(str(e))


waiters = [threading.Thread(daemon=True, target=late, args=(i,)) for i in range(3)]
for t in waiters:
    t.start()
deadline = time.time() + 10
while time.time() < deadline and metric(slow, "ksv_cold_start_queue_depth", model="fraud",
                                        revision="fraud-00001") != 3:
    time.sleep(0.02)
check(metric(slow, "ksv_cold_start_queue_depth", model="fraud", revision="fraud-00001") == 3,
      "ksv_cold_start_queue_depth shows the 3 waiting requests")
t0 = time.time()
slow.proc.send_signal(signal.SIGTERM)
rc = slow.proc.wait(20)
for t in waiters:
    t.join(20)
check(rc == 0 and time.time() - t0 < 15, "SIGTERM with waiting requests: exit %s in %.1f s"
      % (rc, time.time() - t0))
check(sorted(answers) and all(a in (200, 503) for a in answers),
      "each waiting request was answered (200 or 503), none cut: %s" % answers)

# ------------------------------------------------------------------- 3. through ksv apply
work = tmpdir("ksv-s2z-")
node_dir = os.path.join(work, "node")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=ENGINE, USER="tester")


ksv, _ = ksv_cli(env)


MANIFEST = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: fraud
  annotations:
    autoscaling.knative.dev/window: "%s"
    ksv.io/cold-start-queue: "7"
spec:
  predictor:
    minReplicas: 0
    model:
      modelFormat:
        name: xgboost
      storageUri: %s/models/fraud/model.json
      resources:
        limits:
          memory: 64Mi
"""
try:
    rc, out, err = ksv("node", "add", "n1", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add n1 local (%s)" % err.strip())
    path = os.path.join(work, "fraud.yaml")
    with open(path, "w") as f:
        f.write(MANIFEST % ("3s", DATA))
    rc, out, err = ksv("apply", "-f", path)
    check(rc == 0 and "not acted on: spec.predictor.minReplicas" not in out + err,
          "apply a minReplicas 0 manifest: exit 0, minReplicas acted on (%s)" % (out + err).strip()[:200])
    node = Engine.__new__(Engine)  # the engine ksv started: talk to it, do not own it
    node.state_dir = node_dir
    with open(os.path.join(node_dir, "address")) as f:
        node.host, port = f.read().strip().rsplit(":", 1)
        node.port = int(port)
    with open(os.path.join(node_dir, "token")) as f:
        node.token = f.read().strip()
    st, _, m = node.request("GET", "/ksv/v1/models/fraud", admin=True)
    r = m["revisions"][0]
    settings = r["spec"]["settings"]
    check(st == 200 and settings["min_replicas"] == 0 and m["scale_window_s"] == 3
          and m["cold_start_queue"] == 7 and settings["memory_limit_bytes"] == 64 << 20,
          "the engine got min_replicas 0, window 3 s, queue 7, limits.memory 64Mi: %s %s %s %s"
          % (settings.get("min_replicas"), m.get("scale_window_s"), m.get("cold_start_queue"),
             settings.get("memory_limit_bytes")))
    r = wait_state(node, "fraud", "scaled-to-zero", 30)
    check(r and r["state"] == "scaled-to-zero", "the applied model scales to zero on the node")

    def top_revision():
        out = subprocess.run([TOP, "--once", "-o", "json"], capture_output=True, text=True,
                             env=env, timeout=60).stdout
        snap = json.loads(out)
        m = next(x for x in snap["models"] if x["name"] == "fraud")
        return m, m["revisions"][0]

    m, tr = top_revision()
    check(m["ready_nodes"] == 1 and tr["state"] == "scaled-to-zero" and tr["memory_bytes"] == 0,
          "ksv-top shows it scaled-to-zero, ready on its node, holding 0 bytes: %s %s"
          % (m["ready_nodes"], {k: tr.get(k) for k in ("state", "memory_bytes", "cold_starts")}))
    # A 2-minute window from here on, so that the figures below cannot race a new idle.
    with open(path, "w") as f:
        f.write(MANIFEST % ("2m", DATA))
    rc, out, err = ksv("apply", "-f", path)
    st, _, m = node.request("GET", "/ksv/v1/models/fraud", admin=True)
    check(rc == 0 and m["scale_window_s"] == 120 and len(m["revisions"]) == 1,
          "a changed window annotation reaches the engine without a new revision (%s, %d revisions)"
          % (m.get("scale_window_s"), len(m.get("revisions", []))))
    st, _, resp = node.request("POST", "/v2/models/fraud/infer", FRAUD_REQ, timeout=30)
    check(st == 200 and max_abs_diff(resp["outputs"][0]["data"], FRAUD_WANT) < 1e-6,
          "and its first request is answered right after a cold start")
    m, tr = top_revision()
    check(tr["state"] == "ready" and tr["memory_bytes"] > 0 and tr["cold_starts"] == 1,
          "ksv-top then shows it ready, its memory and one cold start: %s"
          % {k: tr.get(k) for k in ("state", "memory_bytes", "cold_starts")})
finally:
    ksv("node", "rm", "n1")
    stop_engine(node_dir)
finish()
