"""A release gate on revisions that may scale to zero (minReplicas 0, DESIGN.md sections 10
and 11), on a real engine whose every load takes 1.2 s (KSV_TEST_LOAD_DELAY_MS: a cold
start a check would notice) and a 1 s scale-to-zero window, with sparse traffic (a burst
every 2 s: longer than the window).

1. The stable revision has scaled to zero when the rollout starts: the gate loads it (and
   the canary) before any request asks, says so once (gate-warm), and while it judges
   neither revision scales to zero, so no cold start falls inside a check's window: the
   canary passes a P99 limit of 500 ms that one cold start (1.2 s) would break, and is
   promoted. Once the rollout is over the hold goes: the idle promoted revision scales to
   zero by its own rules again.
2. A canary that fails (every answer 400) is rolled back; its hold goes too, so after the
   model's rollback window (1 s) it unloads. `retry` then loads it again by itself (at 0%,
   no request could) and the gate leaves Initializing at once instead of waiting out the
   progress deadline; the stable revision it rolled back to is warm again meanwhile."""
import json
import threading
import time

from ksvtest import Engine, check, finish, load_json, model_path

BODY = json.dumps(load_json("requests", "churn-v1.json"))
LOAD_S = 1.2


def rev(name, model_dir):
    return {"name": name, "runtime": "ksv-xgboost", "storage_uri": model_path(model_dir),
            "settings": {"min_replicas": 0}}


eng = Engine(threads=2, extra_env={"KSV_TEST_LOAD_DELAY_MS": str(int(LOAD_S * 1000))})


def model():
    st, _, body = eng.request("GET", "/ksv/v1/models/churn", admin=True)
    return body if st == 200 else {}


def revs():
    return {r["name"]: r for r in model().get("revisions", [])}


def put(revisions, traffic):
    st, _, body = eng.request("PUT", "/ksv/v1/models/churn", admin=True,
                              body={"revisions": revisions, "traffic": traffic,
                                    "scale_window_s": 1, "rollback_window_s": 1})
    if st != 202:
        raise RuntimeError("PUT churn: %d %s" % (st, body))


def wait(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    return pred()


def wait_state(name, state, timeout=20):
    """The revision's state once it is `state`, or the last one seen at the deadline."""
    wait(lambda: revs().get(name, {}).get("state") == state, timeout)
    return revs().get(name, {}).get("state")


def events(kind=None):
    st, _, page = eng.request("GET", "/ksv/v1/events?since=0&limit=5000", admin=True)
    return [e for e in page["events"] if e.get("model") == "churn" and (not kind or e["kind"] == kind)]


class Bursts:
    """Four requests every 2 s (the scale-to-zero window is 1 s); records the states the
    revisions were seen in and the answers."""

    def __init__(self):
        self.stop_ev = threading.Event()
        self.statuses = []
        self.seen = set()
        self.thread = threading.Thread(daemon=True, target=self.run)
        self.thread.start()

    def run(self):
        while not self.stop_ev.is_set():
            for _ in range(4):
                st, hdrs, _ = eng.request("POST", "/v2/models/churn/infer", BODY, timeout=30)
                self.statuses.append(st)
            until = time.time() + 2.0
            while time.time() < until and not self.stop_ev.is_set():
                for name, r in revs().items():
                    self.seen.add((name, r["state"]))
                time.sleep(0.1)

    def stop(self):
        self.stop_ev.set()
        self.thread.join(60)


bursts = None
try:
    # --- 1. a healthy canary over a stable that has scaled to zero ----------------------
    put([rev("churn-00001", "churn-v1")], {"churn-00001": 100})
    state = wait_state("churn-00001", "scaled-to-zero", 30)
    check(state == "scaled-to-zero", "stable churn-00001 scaled to zero after its 1 s window (%s)" % state)
    put([rev("churn-00001", "churn-v1"), rev("churn-00002", "churn-v2")],
        {"churn-00001": 100, "churn-00002": 0})
    policy = {"canary": "churn-00002", "interval_s": 3, "threshold": 1, "step_weights": [50],
              "progress_deadline_s": 60,
              "metrics": [{"name": "request-success-rate", "min": 99, "min_requests": 3},
                          {"name": "request-duration", "max": 500, "min_requests": 3}]}
    st, _, ro = eng.request("PUT", "/ksv/v1/models/churn/rollout", admin=True, body=policy)
    check(st == 200, "rollout started (%d %s)" % (st, ro))
    both = wait(lambda: all(revs().get(n, {}).get("state") in ("ready", "standby")
                            for n in ("churn-00001", "churn-00002")), 20)
    r = revs()
    check(both and r["churn-00001"]["cold_starts"] == 1,
          "the gate loaded the stable from zero and the canary before any request asked "
          "(%s)" % {n: (x["state"], x["cold_starts"]) for n, x in r.items()})
    warm = events("gate-warm")
    check(len(warm) == 1 and "scale to zero held off" in warm[0]["message"],
          "one gate-warm event says so: %s" % [e["message"] for e in warm])
    cold_before = {n: x["cold_starts"] for n, x in r.items()}
    bursts = Bursts()
    ro = wait(lambda: (model().get("rollout") or {}).get("phase") in ("Succeeded", "Failed")
              and model()["rollout"], 90)
    bursts.stop()
    check(ro and ro["phase"] == "Succeeded",
          "the canary is promoted: no cold start fell inside a check's window (%s: %s)" %
          (ro and ro["phase"], ro and ro.get("reason")))
    zero_seen = sorted(n for n, s in bursts.seen if s == "scaled-to-zero")
    check(not zero_seen, "neither revision scaled to zero while the gate judged (%s)" % zero_seen)
    r = revs()
    check(all(r[n]["cold_starts"] == cold_before[n] for n in cold_before),
          "no cold start during the rollout (%s -> %s)" %
          (cold_before, {n: x["cold_starts"] for n, x in r.items()}))
    check(bursts.statuses and all(s == 200 for s in bursts.statuses),
          "every request answered 200 (%d)" % len(bursts.statuses))
    state = wait_state("churn-00002", "scaled-to-zero", 20)
    check(state == "scaled-to-zero", "after the rollout the idle promoted revision scales to zero again (%s)" % state)

    # --- 2. a failing canary: rolled back; the hold goes, and retry loads it again ------
    put([rev("churn-00002", "churn-v2"), rev("churn-00003", "fraud")],
        {"churn-00002": 100, "churn-00003": 0})
    policy = {"canary": "churn-00003", "interval_s": 2, "threshold": 1, "step_weights": [50],
              "progress_deadline_s": 60,
              "metrics": [{"name": "request-success-rate", "min": 99, "min_requests": 2}]}
    st, _, ro = eng.request("PUT", "/ksv/v1/models/churn/rollout", admin=True, body=policy)
    check(st == 200, "a failing canary's rollout started (%d)" % st)
    bursts = Bursts()
    ro = wait(lambda: (model().get("rollout") or {}).get("phase") in ("Succeeded", "Failed")
              and model()["rollout"], 60)
    bursts.stop()
    check(ro and ro["phase"] == "Failed" and "request-success-rate" in ro.get("reason", ""),
          "rolled back (%s: %s)" % (ro and ro["phase"], ro and ro.get("reason")))
    state = wait_state("churn-00003", "unloaded", 20)
    check(state == "unloaded", "the failed canary unloads after the 1 s rollback window (%s)" % state)
    state = wait_state("churn-00002", "scaled-to-zero", 20)
    check(state == "scaled-to-zero", "and the idle stable scales to zero again (%s)" % state)
    t0 = time.time()
    st, _, ro = eng.request("POST", "/ksv/v1/models/churn/rollout/retry", admin=True, body="")
    check(st == 200, "retry (%d %s)" % (st, ro))
    ro = wait(lambda: (model().get("rollout") or {}).get("phase") not in (None, "Initializing")
              and model()["rollout"], 20)
    took = time.time() - t0

    def both_loaded():
        r = revs()
        return r if (r["churn-00002"]["state"] == "ready" and
                     r["churn-00003"]["state"] in ("ready", "standby")) else None
    # The gate moves on once its canary is loaded; the stable, scaled to zero meanwhile,
    # may still be loading then (a loaded machine): the hold must bring it back too.
    r = wait(both_loaded, 20) or revs()
    check(ro and ro["phase"] in ("Progressing", "Waiting") and took < 15,
          "retry loads the unloaded canary itself: the gate leaves Initializing in %.1f s "
          "(%s), not at the 60 s deadline" % (took, ro and ro["phase"]))
    check(r["churn-00002"]["state"] == "ready" and r["churn-00003"]["state"] in ("ready", "standby"),
          "both are loaded again (%s)" % {n: x["state"] for n, x in r.items()})
    st, _, ro = eng.request("POST", "/ksv/v1/models/churn/rollout/abort", admin=True, body="")
    check(st == 200 and ro["phase"] == "Failed", "abort ends it")
finally:
    if bursts:
        bursts.stop()
    eng.stop()
finish()
