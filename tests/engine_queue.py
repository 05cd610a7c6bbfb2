"""Activator-style queueing at a revision's concurrency limit, on a real ksv-engine
(src/engine/scale_to_zero.h, docs/OPERATIONS.md "Replicas").

fraud with containerConcurrency 1 and maxReplicas 1 runs one request at a time; the rest
wait in its queue, at most 10 per slot (Knative's queue-proxy: 10 x containerConcurrency),
first come first served, each up to its revision's timeout.

1. Queueing: four clients send heavy requests (3000 rows) back to back. The admin state
   shows requests waiting (queue_depth >= 1, ksv_request_queue_depth in /metrics) and no
   request is refused: every answer is 200 with XGBoost's own prediction.
2. Overflow: 24 clients back to back (bounded in time) against 1 slot + 10 places. Those
   past the queue get 503 at once with Retry-After: 1 and a message that names the limit
   and the full queue; the queue never holds more than 10; a 503 comes back faster than a
   queued 200; every 200 is XGBoost's prediction. Meanwhile clients that send a request and
   hang up without reading leave no slot behind: once the load stops, nothing is in flight
   or waiting and a fresh request is answered 200.
3. Autoscaling sees the queue: with maxReplicas 3 the waiting requests count as demand, the
   revision scales to 3 replicas and then serves 3 at once.
"""
import json
import re
import socket
import threading
import time

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path

FRAUD = load_json("requests", "fraud.json")
FRAUD_WANT = load_json("expected", "fraud.json")["data"]  # written by XGBoost itself
HEAVY = json.dumps({"inputs": [dict(FRAUD["inputs"][0], shape=[3000, 20],
                                    data=FRAUD["inputs"][0]["data"] * 500)]})
HEAVY_WANT = FRAUD_WANT * 500
HEADERS = {"Content-Type": "application/json"}


def put(eng, name, **settings):
    body = {"revisions": [{"name": name + "-00001", "runtime": "ksv-xgboost",
                           "storage_uri": model_path("fraud"), "settings": settings}],
            "traffic": {name + "-00001": 100}, "scale_window_s": 6}
    st, _, out = eng.request("PUT", "/ksv/v1/models/" + name, admin=True, body=body)
    check(st == 202, "put %s (%s)" % (name, out))
    eng.wait_applied(name)


def state(eng, model):
    return eng.request("GET", "/ksv/v1/models/" + model, admin=True)[2]["revisions"][0]


def queue_metric(eng, model):
    text = eng.request("GET", "/metrics")[2]
    m = re.search(r'^ksv_request_queue_depth\{model="%s",revision="[^"]+"\} (\d+)$' % model,
                  text, re.M)
    return int(m.group(1)) if m else None


class Load:
    """n clients posting HEAVY back to back to /v2/models/MODEL/infer until stopped (or the
    deadline), recording (status, seconds, retry-after, body) of each answer."""

    def __init__(self, eng, model, n, deadline_s):
        self.eng, self.model = eng, model
        self.stop_at = time.time() + deadline_s
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.answers, self.bad = [], []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        c = self.eng.conn(30)
        while not self.stop_ev.is_set() and time.time() < self.stop_at:
            t0 = time.time()
            try:
                st, hdrs, out = self.eng.request("POST", "/v2/models/%s/infer" % self.model,
                                                 HEAVY, conn=c, headers=HEADERS)
            except OSError:
                c.close()
                c = self.eng.conn(30)
                continue
            took = time.time() - t0
            with self.lock:
                self.answers.append((st, took, hdrs.get("retry-after"), out))
                if st == 200 and max_abs_diff(out["outputs"][0]["data"], HEAVY_WANT) > 1e-5:
                    self.bad.append(out)
        c.close()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(60)
        return not any(t.is_alive() for t in self.threads)

    def codes(self):
        with self.lock:
            out = {}
            for a in self.answers:
                out[a[0]] = out.get(a[0], 0) + 1
            return out


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def hang_up(eng, model):
    """Sends a whole request and closes the socket without reading the answer."""
    body = HEAVY.encode()
    s = socket.create_connection((eng.host, eng.port), timeout=10)
    try:
        s.sendall(("POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "application/json\r\nContent-Length: %d\r\n\r\n" % (model, len(body))).encode()
                  + body)
    finally:
        s.close()


try:
    eng = Engine(threads=8)
    put(eng, "fraud", container_concurrency=1, min_replicas=1, max_replicas=1)

    # 1. Four clients against one slot: they queue, nobody is refused.
    load = Load(eng, "fraud", 4, 20)
    deepest, metric_seen = 0, None
    while time.time() < load.stop_at - 15 and deepest < 1:
        deepest = max(deepest, state(eng, "fraud").get("queue_depth", 0))
        if deepest >= 1:
            metric_seen = queue_metric(eng, "fraud")
    ok = load.stop()
    codes = load.codes()
    check(ok, "the four clients finished (nothing hangs)")
    check(deepest >= 1, "requests waited in the queue (queue_depth %d)" % deepest)
    check(metric_seen is not None, "ksv_request_queue_depth is in /metrics (%s)" % metric_seen)
    check(codes.get(200, 0) >= 4 and set(codes) == {200},
          "4 clients, 1 slot, 10 places: every answer 200 (%s)" % codes)
    check(not load.bad, "every 200 carries XGBoost's prediction (%d wrong)" % len(load.bad))

    # 2. 24 clients against 1 slot + 10 places, some hanging up.
    load = Load(eng, "fraud", 24, 20)
    samples = []
    quitters = 0
    t_end = time.time() + 3.0
    while time.time() < t_end:
        samples.append(state(eng, "fraud").get("queue_depth", 0))
        if quitters < 5:
            hang_up(eng, "fraud")
            quitters += 1
        time.sleep(0.05)
    ok = load.stop()
    codes = load.codes()
    check(ok, "the 24 clients finished (nothing hangs)")
    refused = [a for a in load.answers if a[0] == 503]
    served = [a for a in load.answers if a[0] == 200]
    check(set(codes) <= {200, 503} and refused and served,
          "answers are 200 or 503, both seen (%s)" % codes)
    check(all(a[2] == "1" for a in refused), "every 503 has Retry-After: 1")
    msg = json.dumps(refused[0][3]) if refused else ""
    check("1 replica(s) x containerConcurrency 1" in msg and "queue is full" in msg,
          "a 503 names the limit and the full queue (%s)" % msg)
    check(max(samples) <= 10, "the queue never held more than 10 (max %d)" % max(samples))
    check(median([a[1] for a in refused]) < median([a[1] for a in served]),
          "a refusal comes back faster than a queued answer (median %.4f s < %.4f s)" %
          (median([a[1] for a in refused]) or 0, median([a[1] for a in served]) or 0))
    check(not load.bad, "every 200 carries XGBoost's prediction (%d wrong)" % len(load.bad))
    deadline = time.time() + 20
    r = state(eng, "fraud")
    while time.time() < deadline and (r["inflight"] or r["queue_depth"]):
        time.sleep(0.05)
        r = state(eng, "fraud")
    check(r["inflight"] == 0 and r["queue_depth"] == 0,
          "after the load (and %d hang-ups) nothing in flight or waiting (%s, %s)" %
          (quitters, r["inflight"], r["queue_depth"]))
    st, _, out = eng.request("POST", "/v2/models/fraud/infer", HEAVY, headers=HEADERS)
    check(st == 200 and max_abs_diff(out["outputs"][0]["data"], HEAVY_WANT) <= 1e-5,
          "a fresh request is served (%s)" % st)

    # 3. The queue is demand: up to 3 replicas, then 3 served at once.
    put(eng, "wide", container_concurrency=1, min_replicas=1, max_replicas=3, scale_target=1)
    load = Load(eng, "wide", 8, 30)
    most_inflight, reps = 0, 0
    while time.time() < load.stop_at - 25 and most_inflight < 3:
        r = state(eng, "wide")
        reps = max(reps, r["replicas"])
        most_inflight = max(most_inflight, r["inflight"])
    ok = load.stop()
    codes = load.codes()
    check(ok and reps == 3, "queued demand scaled wide to 3 replicas (%d)" % reps)
    check(most_inflight == 3, "3 replicas x containerConcurrency 1: 3 in flight at once (%d)" %
          most_inflight)
    check(set(codes) == {200} and not load.bad,
          "8 clients within 3 slots + 30 places: all 200 and right (%s)" % codes)
finally:
    pass
finish()
