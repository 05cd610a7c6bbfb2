"""Release gates run by ksv-engine itself (docs/API.md, "PUT .../rollout"), on real engines
and models.

1. A healthy canary (churn retrained with other settings, same 8 features) is promoted
   through every step to 100% while no ksv process runs: the test only drives traffic and
   polls the engine with curl.
2. A canary expecting another feature count (fraud, 20 features: every answer a 400) is
   rolled back within `threshold` intervals; the stable revision answers every request 200.
3. Too little traffic: inconclusive checks hold the step (Waiting) and the progress deadline
   rolls back.
4. kill -9 mid-rollout: the restarted engine resumes at the step rollouts.json holds, with
   that step's weight, and finishes.
5. Operator actions: pause holds the weight, resume goes on, abort rolls back, retry starts
   again, promote overrides; bad policies are refused with the field named.
Every decision shows up in GET /ksv/v1/events, and the metrics ksv_canary_* follow."""
import json
import os
import subprocess
import time

from ksvtest import Engine, Traffic, check, finish, load_json, model_path

BODY = json.dumps(load_json("requests", "churn-v1.json"))
EXPECTED = {"churn-v1": load_json("expected", "churn-v1.json")["data"],
            "churn-v2": load_json("expected", "churn-v2.json")["data"]}


def rev(name, model_dir):
    return {"name": name, "runtime": "ksv-xgboost", "storage_uri": model_path(model_dir)}


def gate_load(eng, model, rps, clients=2):
    """churn rows to `model` at about rps requests a second (ksvtest.Traffic)."""
    return Traffic(eng.host, eng.port, model, BODY, rps, clients)


def stop_load(load):
    """Stops the load: (answers by (revision, status), requests that got no answer)."""
    counts = load.stop()
    return counts, counts.pop(("exception", 0), 0)


def curl_json(eng, path):
    """GET an admin path with curl: the first test's only window on the engine."""
    out = subprocess.run(["curl", "-sS", "--max-time", "5", "-H", "Authorization: Bearer " + eng.token,
                          "http://%s:%d%s" % (eng.host, eng.port, path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None


def rollout_of(eng, model):
    st, _, body = eng.request("GET", "/ksv/v1/models/" + model, admin=True)
    return body.get("rollout") if st == 200 else None


def wait_phase(eng, model, phases, timeout, poll=None):
    deadline = time.time() + timeout
    ro = None
    while time.time() < deadline:
        if poll:
            state = poll()
            ro = state.get("rollout") if state else None
        else:
            ro = rollout_of(eng, model)
        if ro and ro["phase"] in phases:
            return ro
        time.sleep(0.1)
    return ro


def put_model(eng, model, revs, traffic):
    st, _, body = eng.request("PUT", "/ksv/v1/models/" + model, admin=True,
                              body={"revisions": revs, "traffic": traffic})
    if st != 202:
        raise RuntimeError("PUT %s: %d %s" % (model, st, body))
    return eng.wait_applied(model)


def events_of(eng, model, kinds_only=True):
    """The model's release-gate events (its residency events, model-load..., left out)."""
    st, _, page = eng.request("GET", "/ksv/v1/events?since=0&limit=5000", admin=True)
    evs = [e for e in page["events"] if e["model"] == model and e["kind"].startswith("gate-")]
    return [e["kind"] for e in evs] if kinds_only else evs


def metric_lines(eng, prefix):
    st, _, text = eng.request("GET", "/metrics")
    return [line for line in text.splitlines() if line.startswith(prefix)]


eng = Engine(threads=2)
SUCCESS = {"name": "request-success-rate", "min": 99, "min_requests": 10}
DURATION = {"name": "request-duration", "max": 500, "min_requests": 10}

# --- bad policies are refused with the field named; nothing changes -------------------
put_model(eng, "churn", [rev("churn-00001", "churn-v1"), rev("churn-00002", "churn-v2")],
          {"churn-00001": 100, "churn-00002": 0})
bad = [
    ({"canary": "churn-00002", "step_weight": 0, "interval_s": 1, "metrics": [SUCCESS]}, "step_weight"),
    ({"canary": "churn-00002", "step_weight": 101, "interval_s": 1, "metrics": [SUCCESS]}, "step_weight"),
    ({"canary": "churn-00002", "step_weight": 10, "interval_s": 0.5, "metrics": [SUCCESS]}, "interval_s"),
    ({"canary": "churn-00002", "step_weight": 10, "interval_s": 1,
      "metrics": [{"name": "request-latency", "max": 5}]}, "unknown metric"),
    ({"canary": "churn-00002", "step_weight": 10, "interval_s": 1,
      "metrics": [{"name": "request-duration"}]}, "threshold range"),
    ({"canary": "churn-00002", "step_weights": [10, 5], "interval_s": 1}, "increase"),
    ({"canary": "churn-00002", "step_weight": 10, "interval_s": 1,
      "metrics": [{"name": "prediction-disagreement", "max": 0.1}]}, "mirror"),
    ({"canary": "churn-00009", "step_weight": 10, "interval_s": 1}, "churn-00009"),
    ({"canary": "churn-00002", "step_weight": 10, "interval_s": 1, "treshold": 3}, "treshold"),
    ({"canary": "churn-00002", "step_weights": list(range(1, 102)), "interval_s": 1}, "step_weights"),
    ({"canary": "churn-00002", "step_weight": 10, "metrics": {"name": "x"}}, "metrics"),
    ({"canary": "churn-00002", "step_weight": 10, "metrics": [SUCCESS] * 9}, "metrics"),
    ({"canary": "churn-00002", "step_weight": 10,
      "metrics": [{"name": "request-duration", "min": 9, "max": 1}]}, "above max"),
    ({"canary": "churn-00002", "step_weight": 10, "mirror": "yes"}, "mirror"),
    ({"canary": "churn-00002", "step_weight": 10, "interval_s": 1,
      "metrics": [{"name": "request-duration", "max": 5, "interval_s": 60}]}, "analysis intervals"),
    ({"canary": ["churn-00002"], "step_weight": 10}, "canary"),
    ({"canary": "churn-00001", "stable": "churn-00001", "step_weight": 10}, "same revision"),
    ({"canary": "churn-00002", "step_weight": 10, "threshold": 1e300}, "threshold"),
    ([1, 2, 3], "object"),
]
for body, word in bad:
    st, _, ans = eng.request("PUT", "/ksv/v1/models/churn/rollout", admin=True, body=body)
    check(st in (400, 404) and word in ans.get("error", ""),
          "bad policy refused naming %r: %d %s" % (word, st, ans))
st, _, ans = eng.request("PUT", "/ksv/v1/models/churn/rollout", admin=True, body="{not json")
check(st == 400, "malformed JSON policy: 400")
st, _, ans = eng.request("PUT", "/ksv/v1/models/nope/rollout", admin=True,
                         body={"canary": "x-1", "step_weight": 10})
check(st == 404, "rollout of an unknown model: 404")
check(rollout_of(eng, "churn") is None, "no rollout after refused policies")
st, _, ans = eng.request("PUT", "/ksv/v1/models/churn/rollout", admin=False, body={})
check(st == 401, "rollout needs the admin token")

# --- 1. a healthy canary goes through every step to 100%, nobody watching ---------------
policy = {"canary": "churn-00002", "interval_s": 1, "threshold": 2, "step_weights": [20, 50, 80],
          "metrics": [SUCCESS, DURATION]}
st, _, ro = eng.request("PUT", "/ksv/v1/models/churn/rollout", admin=True, body=policy)
check(st == 200 and ro["phase"] in ("Initializing", "Progressing") and ro["stable"] == "churn-00001",
      "PUT rollout starts it with stable chosen (%d %s)" % (st, ro and ro.get("phase")))
st, _, again = eng.request("PUT", "/ksv/v1/models/churn/rollout", admin=True, body=policy)
check(st == 200 and again["started"] == ro["started"], "the same policy again is a no-op")
load = gate_load(eng, "churn", rps=120)
t0 = time.time()
seen_weights = set()


def poll_churn():
    state = curl_json(eng, "/ksv/v1/models/churn")
    if state and state.get("rollout"):
        seen_weights.add(state["rollout"]["set_weight"])
    return state


ro = wait_phase(eng, "churn", ("Succeeded", "Failed"), 60, poll=poll_churn)
counts, exc = stop_load(load)
check(ro and ro["phase"] == "Succeeded", "healthy canary Succeeded in %.1f s (%s)" %
      (time.time() - t0, ro and (ro["phase"], ro["reason"])))
check({20, 50, 80, 100} <= seen_weights, "every step's weight was set: %s" % sorted(seen_weights))
state = curl_json(eng, "/ksv/v1/models/churn")
check(state["effective_traffic"] == {"churn-00002": 100}, "canary serves 100%%: %s" % state["effective_traffic"])
check(ro and ro["actual_weight"] == 100 and ro["set_weight"] == 100 and ro["failed_checks"] == 0,
      "rollout shows set and actual weight 100, no failed checks")
check(ro and all(c["verdict"] == "pass" and c["requests"] >= 10 for c in ro["checks"]),
      "last checks passed with enough requests: %s" % (ro and ro["checks"]))
bad_answers = sum(n for (r, s), n in counts.items() if s != 200)
check(bad_answers == 0 and exc == 0, "no failed request during the rollout (%s, %d exceptions)" % (dict(counts), exc))
kinds = events_of(eng, "churn")
check(kinds[:1] == ["gate-start"] and kinds[-2:] == ["gate-promote", "gate-succeeded"]
      and kinds.count("gate-step") == 3, "events: start, 3 steps, checks, promote, succeeded: %s" % kinds)
m = metric_lines(eng, "ksv_canary_")
check('ksv_canary_status{model="churn"} 1' in m, "ksv_canary_status is 1 (succeeded)")
check('ksv_canary_weight{model="churn",revision="churn-00002"} 100' in m, "ksv_canary_weight 100")
check(any(line.startswith('ksv_canary_checks_total{model="churn",metric="request-success-rate",verdict="pass"}')
          and int(line.split()[-1]) == 3 for line in m), "ksv_canary_checks_total counts 3 passes (one a step)")

# --- 2. a canary that rejects every request is rolled back within threshold intervals ------
put_model(eng, "bad", [rev("bad-00001", "churn-v1"), rev("bad-00002", "fraud")],
          {"bad-00001": 100, "bad-00002": 0})
load = gate_load(eng, "bad", rps=150)
st, _, ro = eng.request("PUT", "/ksv/v1/models/bad/rollout", admin=True, body={
    "canary": "bad-00002", "interval_s": 1, "threshold": 2, "step_weights": [20, 60],
    "metrics": [SUCCESS, DURATION]})
check(st == 200, "bad canary rollout starts")
prog = wait_phase(eng, "bad", ("Progressing", "Waiting", "Failed"), 20)
t_prog = time.time()
ro = wait_phase(eng, "bad", ("Failed", "Succeeded"), 20)
took = time.time() - t_prog
time.sleep(0.5)
counts, exc = stop_load(load)
check(ro and ro["phase"] == "Failed", "bad canary Failed (%s)" % (ro and ro["phase"]))
check(took <= 2 * 1 + 2.5, "rolled back within threshold intervals (+ slack): %.1f s" % took)
check(ro and "request-success-rate" in ro["reason"] and "threshold 2" in ro["reason"],
      "reason names the metric and threshold: %s" % (ro and ro["reason"]))
check(ro and ro["failed_checks"] == 2 and ro["set_weight"] == 0, "2 failed checks, weight back to 0")
state = eng.wait_applied("bad")
check(state["effective_traffic"] == {"bad-00001": 100}, "stable serves 100%% again: %s" % state["effective_traffic"])
stable_bad = sum(n for (r, s), n in counts.items() if r == "bad-00001" and s != 200)
stable_ok = counts[("bad-00001", 200)]
canary_400 = counts[("bad-00002", 400)]
check(stable_bad == 0 and exc == 0 and stable_ok > 100,
      "stable answered all %d of its requests 200 (%s)" % (stable_ok, dict(counts)))
check(canary_400 > 0 and counts[("bad-00002", 200)] == 0, "the canary answered only 400s (%d)" % canary_400)
kinds = events_of(eng, "bad")
check(kinds.count("gate-rollback") == 1 and "gate-promote" not in kinds and kinds.count("gate-step") == 1,
      "events: one step, checks, one rollback: %s" % kinds)
m = metric_lines(eng, "ksv_canary_")
check('ksv_canary_status{model="bad"} 2' in m and 'ksv_canary_weight{model="bad",revision="bad-00002"} 0' in m,
      "metrics show failed, weight 0")
fails = [line for line in m if 'model="bad",metric="request-success-rate",verdict="fail"' in line]
check(fails and int(fails[0].split()[-1]) == 2, "ksv_canary_checks_total counts 2 fails: %s" % fails)

# --- 3. too little traffic: Waiting, then the progress deadline rolls back ------------------
put_model(eng, "quiet", [rev("quiet-00001", "churn-v1"), rev("quiet-00002", "churn-v2")],
          {"quiet-00001": 100, "quiet-00002": 0})
load = gate_load(eng, "quiet", rps=4, clients=1)
st, _, ro = eng.request("PUT", "/ksv/v1/models/quiet/rollout", admin=True, body={
    "canary": "quiet-00002", "interval_s": 1, "threshold": 2, "step_weights": [50],
    "progress_deadline_s": 3, "metrics": [{"name": "request-success-rate", "min": 99}]})
ro = wait_phase(eng, "quiet", ("Waiting",), 15)
check(ro and ro["phase"] == "Waiting" and ro["set_weight"] == 50 and
      ro["checks"][0]["verdict"] == "inconclusive", "few requests: Waiting at the step (%s)" % (ro and ro["checks"]))
ro = wait_phase(eng, "quiet", ("Failed", "Succeeded"), 15)
load.stop()
check(ro and ro["phase"] == "Failed" and "progress deadline" in ro["reason"],
      "progress deadline rolls back: %s" % (ro and ro["reason"]))
check(ro and ro["failed_checks"] == 0, "inconclusive checks are not failed checks")
check(eng.wait_applied("quiet")["effective_traffic"] == {"quiet-00001": 100}, "quiet: stable 100% again")

# --- 5. operator actions --------------------------------------------------------------------
st, _, ans = eng.request("POST", "/ksv/v1/models/quiet/rollout/retry", admin=True)
check(st == 200 and ans["phase"] in ("Initializing", "Progressing") and ans["failed_checks"] == 0,
      "retry starts a Failed rollout again (%d %s)" % (st, ans.get("phase")))
ro = wait_phase(eng, "quiet", ("Progressing", "Waiting"), 10)
st, _, ans = eng.request("POST", "/ksv/v1/models/quiet/rollout/pause", admin=True)
check(st == 200 and ans["phase"] == "Paused", "pause")
time.sleep(4)  # longer than the deadline: a paused rollout does not time out
ro = rollout_of(eng, "quiet")
check(ro["phase"] == "Paused" and ro["set_weight"] == 50, "paused rollout holds its weight past the deadline")
st, _, ans = eng.request("POST", "/ksv/v1/models/quiet/rollout/pause", admin=True)
check(st == 409, "pausing twice: 409")
st, _, ans = eng.request("POST", "/ksv/v1/models/quiet/rollout/resume", admin=True)
check(st == 200 and ans["phase"] in ("Progressing", "Waiting"), "resume")
st, _, ans = eng.request("POST", "/ksv/v1/models/quiet/rollout/abort", admin=True)
check(st == 200 and ans["phase"] == "Failed" and "aborted" in ans["reason"], "abort rolls back")
check(eng.wait_applied("quiet")["effective_traffic"] == {"quiet-00001": 100}, "abort: stable 100%")
st, _, ans = eng.request("POST", "/ksv/v1/models/quiet/rollout/promote", admin=True)
check(st == 200 and ans["phase"] in ("Promoting", "Succeeded") and ans["manual"] is True,
      "promote overrides the gate")
ro = wait_phase(eng, "quiet", ("Succeeded",), 10)
check(ro and ro["phase"] == "Succeeded", "manual promotion succeeds")
check(eng.wait_applied("quiet")["effective_traffic"] == {"quiet-00002": 100}, "promote: canary 100%")
st, _, ans = eng.request("POST", "/ksv/v1/models/quiet/rollout/frobnicate", admin=True)
check(st == 404, "unknown action: 404")
kinds = events_of(eng, "quiet")
for k in ("gate-retry", "gate-pause", "gate-resume", "gate-abort", "gate-promote", "gate-succeeded"):
    check(k in kinds, "event %s recorded" % k)

# --- 4. kill -9 mid-rollout resumes at the same step ----------------------------------------
put_model(eng, "crash", [rev("crash-00001", "churn-v1"), rev("crash-00002", "churn-v2")],
          {"crash-00001": 100, "crash-00002": 0})
load = gate_load(eng, "crash", rps=120)
st, _, ro = eng.request("PUT", "/ksv/v1/models/crash/rollout", admin=True, body={
    "canary": "crash-00002", "interval_s": 2, "threshold": 2, "step_weights": [10, 20, 30, 40, 50],
    "metrics": [SUCCESS]})
deadline = time.time() + 30
while time.time() < deadline:
    ro = rollout_of(eng, "crash")
    if ro["step"] >= 2:
        break
    time.sleep(0.1)
load.stop()
eng.kill9()
with open(os.path.join(eng.state_dir, "rollouts.json")) as f:
    saved = [r for r in json.load(f)["rollouts"] if r["model"] == "crash"][0]["progress"]
# The file may lag the state shown by one decision (it is written before the weight moves).
check(saved["phase"] in ("Progressing", "Waiting") and saved["step"] >= 1,
      "killed mid-rollout (saved step %d, %s)" % (saved["step"] + 1, saved["phase"]))
eng.start()
ro = rollout_of(eng, "crash")
check(ro["step"] == saved["step"] and ro["set_weight"] == saved["set_weight"],
      "restarted engine resumes at step %d, weight %d%% (%s)" % (ro["step"] + 1, ro["set_weight"], ro["phase"]))
state = eng.wait_applied("crash")
check(state["traffic"]["crash-00002"] == saved["set_weight"], "the split is the step's: %s" % state["traffic"])
# A model PUT during the rollout (a console reconciling its own split) keeps the gate's.
st, _, body = eng.request("PUT", "/ksv/v1/models/crash", admin=True, body={
    "revisions": [rev("crash-00001", "churn-v1"), rev("crash-00002", "churn-v2")],
    "traffic": {"crash-00001": 100, "crash-00002": 0}})
check(st == 202 and body["traffic"]["crash-00002"] == body["rollout"]["set_weight"] > 0,
      "a model PUT mid-rollout keeps the gate's split (%s)" % (body.get("traffic"),))
load = gate_load(eng, "crash", rps=120)
ro = wait_phase(eng, "crash", ("Succeeded", "Failed"), 60)
load.stop()
check(ro and ro["phase"] == "Succeeded", "the resumed rollout finishes (%s)" % (ro and ro["reason"]))
evs = events_of(eng, "crash", kinds_only=False)
entered = [e["figures"]["step"] for e in evs if e["kind"] == "gate-step"]
resumed = [e["figures"]["step"] for e in evs if e["kind"] == "gate-restart"]
# A kill between saving a step and recording it leaves the step to the restart's record.
check(len(resumed) == 1 and resumed[0] == saved["step"] + 1, "the restart is recorded at step %s" % resumed)
# A kill between recording a step and saving it repeats that one step after the restart (the
# event comes first so it is never lost: gate.c's commit order); no other step repeats.
repeated = sorted({x for x in entered if entered.count(x) > 1})
check(repeated in ([], [saved["step"] + 2]) and sorted(set(entered) | set(resumed)) == [1, 2, 3, 4, 5],
      "each of the 5 steps entered once across the restart, but the one in flight at the kill "
      "(%s, resumed at %s)" % (entered, resumed))

# Flagger's skipAnalysis: promoted as soon as the canary is ready; no step is held or judged
# (with 60 s intervals, a judged step could not finish within the 20 s waited here).
put_model(eng, "skip", [rev("skip-00001", "churn-v1"), rev("skip-00002", "churn-v2")],
          {"skip-00001": 100, "skip-00002": 0})
st, _, ans = eng.request("PUT", "/ksv/v1/models/skip/rollout", admin=True,
                         body={"canary": "skip-00002", "step_weight": 10, "skip_analysis": "yes"})
check(st == 400 and "skip_analysis" in ans.get("error", ""), "skip_analysis must be a boolean: %s" % ans)
st, _, ro = eng.request("PUT", "/ksv/v1/models/skip/rollout", admin=True, body={
    "canary": "skip-00002", "step_weight": 10, "interval_s": 60, "skip_analysis": True,
    "metrics": [SUCCESS]})
check(st == 200 and ro.get("skip_analysis") is True, "a skip_analysis rollout starts (%d)" % st)
ro = wait_phase(eng, "skip", ("Succeeded", "Failed"), 20)
check(ro and ro["phase"] == "Succeeded" and ro["actual_weight"] == 100,
      "skip_analysis promotes the ready canary at once (%s %s)" % (ro and ro["phase"], ro and ro["actual_weight"]))
check(events_of(eng, "skip") == ["gate-start", "gate-promote", "gate-succeeded"],
      "with no step or check in between: %s" % events_of(eng, "skip"))
eng.stop()

# A damaged rollouts.json stops the engine with a clear message rather than losing the gate.
with open(os.path.join(eng.state_dir, "rollouts.json"), "w") as f:
    f.write('{"rollouts": [{"model": "crash", "policy": {"canary": 5}}]}')
try:
    eng.start()
    started = True
except RuntimeError:
    started = False
check(not started and "rollouts.json" in eng.log_text(), "a damaged rollouts.json is refused, named in the log")
finish()
