"""ksv-engine admin API: token, revisions, weighted split (within 2 points over 10,000
requests), pinned revisions, the revision lifecycle (drain, standby, unload, reload on
rollback), error ring, histograms, node info, and the applied state surviving kill -9."""
import collections
import os
import random
import time

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path

V1 = "file://" + model_path("churn-v1")
V2 = model_path("churn-v2") + "/model.json"
REQ = load_json("requests", "churn-v1.json")
EXPECTED = {"churn-00001": load_json("expected", "churn-v1.json")["data"],
            "churn-00002": load_json("expected", "churn-v2.json")["data"]}


def rev(name, uri, **settings):
    r = {"name": name, "runtime": "ksv-xgboost", "storage_uri": uri}
    if settings:
        r["settings"] = settings
    return r


eng = Engine()

# Token.
check(eng.request("GET", "/ksv/v1/state")[0] == 401, "admin API without a token: 401")
st, _, _ = eng.request("GET", "/ksv/v1/state", headers={"Authorization": "Bearer wrong"})
check(st == 401, "admin API with a wrong token: 401")
check(eng.request("GET", "/ksv/v1/state", headers={"Authorization": "Basic " + eng.token})[0] == 401,
      "admin API with a non-bearer scheme: 401")
mode = os.stat(os.path.join(eng.state_dir, "token")).st_mode & 0o777
check(mode == 0o600, "the generated token file is mode 0600 (%o)" % mode)
st, _, state = eng.request("GET", "/ksv/v1/state", admin=True)
check(st == 200 and state == {"models": []}, "an empty engine has no models")

# One revision.
st, _, body = eng.request("PUT", "/ksv/v1/models/churn", {"revisions": [rev("churn-00001", V1)]}, admin=True)
check(st == 202 and body["name"] == "churn", "PUT a model: 202 with its state")
state = eng.wait_applied("churn")
check(state["effective_traffic"] == {"churn-00001": 100}, "one revision takes 100%")
st, hdrs, resp = eng.request("POST", "/v2/models/churn/infer", REQ)
check(st == 200 and hdrs["ksv-revision"] == "churn-00001" and
      max_abs_diff(resp["outputs"][0]["data"], EXPECTED["churn-00001"]) <= 1e-6,
      "the model answers from churn-00001 like XGBoost")

# Immutable revisions, validation.
st, _, body = eng.request("PUT", "/ksv/v1/models/churn", {"revisions": [rev("churn-00001", V2)]}, admin=True)
check(st == 409 and "immutable" in body["error"], "a known revision with another spec: 409")
bad_bodies = [
    ({"revisions": [rev("churn-00001", V1), rev("churn-00002", V2)], "traffic": {"churn-00001": 50}}, 400),
    ({"revisions": [rev("churn-00001", V1)], "traffic": {"churn-00001": 101}}, 400),
    ({"revisions": [rev("churn-00001", V1)], "traffic": {"nope": 100}}, 404),
    ({"revisions": []}, 400),
    ({"revisions": [rev("Bad Name", V1)]}, 400),
    ({"revisions": [{"name": "x-1", "runtime": "tensorflow", "storage_uri": V1}]}, 400),
    ({"revisions": [rev("churn-00001", V1), rev("churn-00001", V1)]}, 400),
    ({"revisions": [rev("churn-00001", V1, booster_pool="lake")]}, 400),
    ({"revisions": "x"}, 400),
]
for body, want in bad_bodies:
    st, _, resp = eng.request("PUT", "/ksv/v1/models/churn", body, admin=True)
    check(st == want and "error" in resp, "bad PUT %s: %d" % (str(body)[:70], want))
st, _, resp = eng.request("PUT", "/ksv/v1/models/churn", "{not json", admin=True)
check(st == 400 and "malformed" in resp["error"], "malformed admin JSON: 400")

# Canary: 90/10, drawn by weight within 2 points over 10,000 requests.
st, _, _ = eng.request("PUT", "/ksv/v1/models/churn", {
    "revisions": [rev("churn-00001", V1), rev("churn-00002", V2)],
    "traffic": {"churn-00001": 90, "churn-00002": 10}}, admin=True)
check(st == 202, "PUT a canary split 90/10")
state = eng.wait_applied("churn")
check(state["effective_traffic"] == {"churn-00001": 90, "churn-00002": 10}, "90/10 in effect")
counts = collections.Counter()
wrong = 0
conn = eng.conn()
for i in range(10000):
    st, hdrs, resp = eng.request("POST", "/v2/models/churn/infer", REQ, conn=conn)
    r = hdrs.get("ksv-revision")
    counts[r] += 1
    if st != 200 or max_abs_diff(resp["outputs"][0]["data"], EXPECTED.get(r, [])) > 1e-6:
        wrong += 1
conn.close()
share = 100.0 * counts["churn-00002"] / 10000
check(abs(share - 10) <= 2, "canary share over 10,000 requests: %.2f%% (want 10 +- 2)" % share)
check(wrong == 0, "every answer equals XGBoost's for the revision that served it (%d wrong)" % wrong)

# Pinned revisions.
for name in ("churn-00001", "churn-00002"):
    st, hdrs, resp = eng.request("POST", "/v2/models/churn/versions/%s/infer" % name, REQ)
    check(st == 200 and hdrs["ksv-revision"] == name and
          max_abs_diff(resp["outputs"][0]["data"], EXPECTED[name]) <= 1e-6,
          "pinned to %s answers from it" % name)
st, _, resp = eng.request("POST", "/v2/models/churn/versions/churn-00009/infer", REQ)
check(st == 404, "pinned to an unknown revision: 404")

# Lifecycle: move everything to the canary with a 1 s rollback window.
st, _, _ = eng.request("PUT", "/ksv/v1/models/churn", {
    "revisions": [rev("churn-00001", V1), rev("churn-00002", V2)],
    "traffic": {"churn-00001": 0, "churn-00002": 100}, "rollback_window_s": 1}, admin=True)
state = eng.wait_applied("churn")
states = {r["name"]: r["state"] for r in state["revisions"]}
check(states["churn-00002"] == "ready" and states["churn-00001"] in ("draining", "standby"),
      "the revision that lost its traffic drains, then stands by (%s)" % states)
st, hdrs, _ = eng.request("POST", "/v2/models/churn/versions/churn-00001/infer", REQ)
check(st == 200, "a standby revision still answers pinned requests (instant rollback)")
deadline = time.time() + 10
while time.time() < deadline:
    st, _, state = eng.request("GET", "/ksv/v1/models/churn", admin=True)
    if {r["name"]: r["state"] for r in state["revisions"]}["churn-00001"] == "unloaded":
        break
    time.sleep(0.1)
check({r["name"]: r["state"] for r in state["revisions"]}["churn-00001"] == "unloaded",
      "after the rollback window the revision is unloaded")
st, _, resp = eng.request("POST", "/v2/models/churn/versions/churn-00001/infer", REQ)
check(st == 503, "pinned to an unloaded revision: 503")
# Rollback to the unloaded revision: it reloads before it gets traffic.
st, _, body = eng.request("PUT", "/ksv/v1/models/churn/traffic",
                          {"traffic": {"churn-00001": 100, "churn-00002": 0}}, admin=True)
check(st == 202, "traffic back to the unloaded revision accepted")
served = collections.Counter()
deadline = time.time() + 10
while time.time() < deadline:
    st, hdrs, _ = eng.request("POST", "/v2/models/churn/infer", REQ)
    served[(st, hdrs.get("ksv-revision"))] += 1
    if hdrs.get("ksv-revision") == "churn-00001":
        break
check(all(k[0] == 200 for k in served), "no request failed while the old revision reloaded (%s)" % dict(served))
state = eng.wait_applied("churn")
check(state["effective_traffic"] == {"churn-00001": 100}, "the rolled-back split is in effect")

# Traffic endpoint errors.
for body, want in [({"traffic": {"churn-00001": 50}}, 400), ({"traffic": {"nope": 100}}, 404),
                   ({"weights": {}}, 400), ("[1,2", 400)]:
    st, _, _ = eng.request("PUT", "/ksv/v1/models/churn/traffic", body, admin=True)
    check(st == want, "bad traffic body %s: %d" % (str(body)[:40], want))
check(eng.request("PUT", "/ksv/v1/models/nope/traffic", {"traffic": {}}, admin=True)[0] == 404,
      "traffic for an unknown model: 404")

# A revision that fails to load leaves the old split serving.
st, _, _ = eng.request("PUT", "/ksv/v1/models/churn", {
    "revisions": [rev("churn-00001", V1), rev("churn-00003", "/nonexistent/model.json")],
    "traffic": {"churn-00001": 0, "churn-00003": 100}}, admin=True)
time.sleep(0.5)
st, _, state = eng.request("GET", "/ksv/v1/models/churn", admin=True)
r3 = [r for r in state["revisions"] if r["name"] == "churn-00003"][0]
check(r3["state"] == "failed" and "no such file" in r3.get("error", ""), "a missing file: revision failed, with the reason")
check(state["traffic_applied"] is False and state["effective_traffic"] == {"churn-00001": 100},
      "the previous split keeps serving")
check(eng.request("POST", "/v2/models/churn/infer", REQ)[0] == 200, "requests still succeed")

# Error ring: request ids and statuses of recent errors.
eng.request("POST", "/v2/models/churn/infer", {"inputs": []}, headers={"x-request-id": "bad-req-1"})
st, _, errs = eng.request("GET", "/ksv/v1/models/churn/errors", admin=True)
check(st == 200 and errs["errors"] and errs["errors"][0]["request_id"] == "bad-req-1" and
      errs["errors"][0]["status"] == 400 and errs["errors"][0]["message"],
      "the error ring records the last error with its request id")
log = eng.log_text()
check("bad-req-1" not in log or "[bad-req-1]" in log, "error log lines carry the request id")
check(eng.token not in log, "the token never appears in the log")

# Histograms and node info.
st, _, h = eng.request("GET", "/ksv/v1/histograms", admin=True)
series = [s for s in h["series"] if s["revision"] == "churn-00001"]
check(st == 200 and series and series[0]["histogram"]["count"] >= 8500 and
      series[0]["codes"]["200"] >= 8500, "fine histograms and code counters per revision")
st, _, node = eng.request("GET", "/ksv/v1/node", admin=True)
check(st == 200 and node["version"] and node["threads"] == 2 and "load" in node, "node info")

# The histograms tell the state's ETag (X-Ksv-State-ETag), the one GET /ksv/v1/state
# answers with, on a 200 and on a 304 alike; a change of the state changes it.
_, sh, _ = eng.request("GET", "/ksv/v1/state", admin=True)
st, hh, _ = eng.request("GET", "/ksv/v1/histograms", admin=True)
check(st == 200 and sh.get("etag") and hh.get("x-ksv-state-etag") == sh["etag"],
      "the histograms carry the state's ETag (%s, %s)" % (hh.get("x-ksv-state-etag"), sh.get("etag")))
st, h304, body = eng.request("GET", "/ksv/v1/histograms", admin=True,
                             headers={"If-None-Match": hh["etag"]})
check(st == 304 and not body and h304.get("x-ksv-state-etag") == sh["etag"],
      "and so does the histograms' 304 (%d)" % st)
eng.request("PUT", "/ksv/v1/models/fraud", {"revisions": [rev("fraud-00001", model_path("fraud"))]},
            admin=True)
eng.wait_applied("fraud")
_, sh2, _ = eng.request("GET", "/ksv/v1/state", admin=True)
_, hh2, _ = eng.request("GET", "/ksv/v1/histograms", admin=True, headers={"If-None-Match": hh["etag"]})
check(sh2["etag"] != sh["etag"] and hh2.get("x-ksv-state-etag") == sh2["etag"],
      "a new state: the histograms tell its new ETag")

# Applied state survives kill -9: restore the last good spec first.
spec = {"revisions": [rev("churn-00001", V1), rev("churn-00002", V2)],
        "traffic": {"churn-00001": 70, "churn-00002": 30}, "rollback_window_s": 30}
eng.request("PUT", "/ksv/v1/models/churn", spec, admin=True)
eng.request("PUT", "/ksv/v1/models/fraud", {"revisions": [rev("fraud-00001", model_path("fraud"))]}, admin=True)
eng.wait_applied("churn")
eng.wait_applied("fraud")
_, _, before = eng.request("GET", "/ksv/v1/state", admin=True)
eng.kill9()
eng.start()
check(eng.wait_ready(), "restarted after kill -9 and ready")
after = eng.wait_applied("churn")
_, _, after = eng.request("GET", "/ksv/v1/state", admin=True)


def summary(st):
    return sorted((m["name"], tuple(sorted(m["traffic"].items())), m["rollback_window_s"],
                   tuple(sorted(r["name"] for r in m["revisions"]))) for m in st["models"])


check(summary(before) == summary(after), "same models, revisions and weights after kill -9")

# kill -9 at random moments during changes: the state is always the old or the new one.
rng = random.Random(7)
for i in range(5):
    pct = rng.randrange(0, 101)
    conn = eng.conn()
    conn.request("PUT", "/ksv/v1/models/churn/traffic",
                 body='{"traffic":{"churn-00001":%d,"churn-00002":%d}}' % (pct, 100 - pct),
                 headers={"Authorization": "Bearer " + eng.token})
    time.sleep(rng.random() * 0.01)
    eng.kill9()
    conn.close()
    eng.start()
    eng.wait_ready()
    _, _, st_ = eng.request("GET", "/ksv/v1/models/churn", admin=True)
    t = st_["traffic"]
    check(sum(t.values()) == 100 and len(t) == 2, "kill -9 during a change #%d: a whole state (%s)" % (i, t))

# Delete.
st, _, _ = eng.request("DELETE", "/ksv/v1/models/fraud", admin=True)
check(st == 200, "DELETE a model: 200")
check(eng.request("POST", "/v2/models/fraud/infer", load_json("requests", "fraud.json"))[0] == 404,
      "a deleted model answers 404")
check(eng.request("DELETE", "/ksv/v1/models/fraud", admin=True)[0] == 404, "deleting it again: 404")
check(eng.request("GET", "/ksv/v1/bogus", admin=True)[0] == 404, "unknown admin path: 404")
check(eng.request("POST", "/ksv/v1/state", "{}", admin=True)[0] == 405, "wrong admin method: 405")

# Two engines can not share a state dir.
try:
    Engine(state_dir=eng.state_dir)
    check(False, "a second engine on the same state dir is refused")
except RuntimeError as e:
    check("in use" in str(e), "a second engine on the same state dir is refused")

check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
