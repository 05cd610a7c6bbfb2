"""`ksv cost` after a scripted day, against what happened (DESIGN.md §11, issue 13).

A real engine runs on a test clock (KSV_TEST_CLOCK: it starts 24 h in the past and the test
moves it forward with POST /ksv/v1/test/clock, so a day of residency plays in seconds: no
sleeping). Two namespaces through `ksv apply` on an http node and real SQLite:
team-a/fraud with minReplicas 0 (scales to zero), team-b/iris with minReplicas 1 (never).

  t=0      both load; 10 requests to fraud, 5 to iris
  +2 h     fraud scales to zero (idle past its 60 s window)
  +6 h     20 requests to fraud: a cold start; 5 more to iris
  +1 h     fraud scales to zero again
  +15 h    the end of the day (iris still loaded)

`ksv cost -o json` must give:
  - the figures computed here, by hand, from the engine's own event log (GET /ksv/v1/events:
    load/unload times and the memory each load measured), open residencies ending at the
    engine's clock (bracketed by reading it before and after ksv runs);
  - what the script did: fraud loaded 3 h, 21 h at zero, 30 requests; iris loaded 24 h,
    all of it idle (no request for longer than its window), 10 requests;
  - money at --gb-hour-price, and from the config file; -n keeps one namespace; --since
    clips the window; running it twice counts each event once; bad config and flags are
    refused with a clear message.
"""
import json
import os
import sqlite3
import time

from ksvtest import (ksv_cli, DATA, ENGINE, Engine, check, finish, load_json, model_path,
                     tmpdir)

GB = float(1 << 30)
work = tmpdir("ksv-cost-")
db = os.path.join(work, "ksv.db")
env = dict(os.environ, KSV_DB=db, XDG_STATE_HOME=os.path.join(work, "state"),
           XDG_CONFIG_HOME=os.path.join(work, "config"), KSV_ENGINE=ENGINE, USER="tester")
env.pop("KSV_CONFIG", None)
ksv, ksv_json = ksv_cli(env, timeout=120)

FRAUD_REQ = load_json("requests", "fraud.json")
FRAUD_WANT = load_json("expected", "fraud.json")["data"]
IRIS_REQ = load_json("requests", "iris.json")


def isvc(name, ns, uri, min_replicas):
    return """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: %s
  namespace: %s
  annotations:
    autoscaling.knative.dev/window: 60s
spec:
  predictor:
    minReplicas: %d
    model:
      modelFormat:
        name: xgboost
      storageUri: %s
""" % (name, ns, min_replicas, uri)


def advance(eng, seconds):
    st, _, body = eng.request("POST", "/ksv/v1/test/clock", {"advance_s": seconds}, admin=True)
    assert st == 200, body


def state_of(eng, model):
    st, _, body = eng.request("GET", "/ksv/v1/models/" + model, admin=True)
    return body["revisions"][0]["state"] if st == 200 else None


def wait_state(eng, model, want, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if state_of(eng, model) == want:
            return True
        time.sleep(0.05)
    return False


def infer(eng, model, body, n):
    ok = 0
    for _ in range(n):
        st, _, out = eng.request("POST", "/v2/models/%s/infer" % model, body, timeout=30)
        ok += st == 200
    return ok


def engine_now(eng):
    return eng.request("GET", "/ksv/v1/usage", admin=True)[2]["now"]


def by_hand(events, end, since=None, until=None):
    """Residencies and time at zero from the raw event log, clipped to [since, until];
    open ones end at `end`. Returns {(model, revision): figures}."""
    since = since if since is not None else float("-inf")
    until = until if until is not None else float("inf")
    out, open_ = {}, {}

    def clipped(a, b):
        lo, hi = max(a, since), min(b, until)
        return max(0.0, hi - lo), (max(0.0, hi - lo) / (b - a) if b > a else 0.0)

    def row(key):
        return out.setdefault(key, {"loaded_hours": 0.0, "memory_gb_hours": 0.0,
                                    "scaled_to_zero_hours": 0.0, "saved_gb_hours": 0.0,
                                    "requests": 0.0, "idle_loaded_hours": 0.0})

    def close_res(key, at, requests, idle):
        o = open_.get(key)
        if o and o.get("since") is not None:
            secs, frac = clipped(o["since"], at)
            r = row(key)
            r["loaded_hours"] += secs / 3600
            r["memory_gb_hours"] += o["mem"] / GB * secs / 3600
            r["requests"] += requests * frac
            r["idle_loaded_hours"] += min(idle * frac / 3600, secs / 3600)
            o["since"] = None

    def close_zero(key, at):
        o = open_.get(key)
        if o and o.get("zero") is not None:
            secs, _ = clipped(o["zero"], at)
            r = row(key)
            r["scaled_to_zero_hours"] += secs / 3600
            r["saved_gb_hours"] += o["zero_mem"] / GB * secs / 3600
            o["zero"] = None

    for e in events:
        key = (e["model"], e["revision"])
        f = e["figures"]
        if e["kind"] in ("model-load", "cold-start"):
            close_zero(key, e["time"])
            open_[key] = {"since": e["time"], "mem": f["memory_bytes"], "zero": None}
        elif e["kind"] in ("model-unload", "scale-to-zero"):
            close_res(key, e["time"], f["requests"], f["idle_seconds"])
            if e["kind"] == "scale-to-zero":
                open_[key]["zero"], open_[key]["zero_mem"] = e["time"], f["memory_bytes"]
            else:
                close_zero(key, e["time"])
    for key in open_:
        close_zero(key, end)  # still at zero now
    return out, open_


def near(a, b, tol):
    return abs(a - b) <= tol


try:
    eng = Engine(extra_env={"KSV_TEST_CLOCK": "-86400"})
    token_file = os.path.join(eng.state_dir, "token")
    rc, _, err = ksv("node", "add", "n1", "http://127.0.0.1:%d" % eng.port, "--token-file",
                     token_file)
    check(rc == 0, "node n1 added over http (%s)" % err.strip())
    path = os.path.join(work, "day.yaml")
    with open(path, "w") as f:
        f.write(isvc("fraud", "team-a", model_path("fraud"), 0) + "---\n" +
                isvc("iris", "team-b", model_path("iris"), 1))
    rc, out, err = ksv("apply", "-f", path, "--node", "n1")
    if not check(rc == 0, "both models applied (%s)" % (err.strip() or out.strip())):
        print(eng.log_text())
    check(eng.wait_applied("fraud") and eng.wait_applied("iris"), "both loaded")

    # --- the day ---
    check(infer(eng, "fraud", FRAUD_REQ, 10) == 10, "t=0: 10 fraud requests answered 200")
    check(infer(eng, "iris", IRIS_REQ, 5) == 5, "t=0: 5 iris requests answered 200")
    advance(eng, 2 * 3600)
    check(wait_state(eng, "fraud", "scaled-to-zero"), "+2 h: fraud scaled to zero")
    check(state_of(eng, "iris") == "ready", "+2 h: iris (minReplicas 1) still loaded")
    advance(eng, 6 * 3600)
    st, _, first = eng.request("POST", "/v2/models/fraud/infer", FRAUD_REQ, timeout=60)
    check(st == 200 and abs(first["outputs"][0]["data"][0] - FRAUD_WANT[0]) < 1e-5,
          "+8 h: the first fraud request is a cold start answered with XGBoost's output")
    check(infer(eng, "fraud", FRAUD_REQ, 19) == 19, "+8 h: 19 more fraud requests 200")
    check(infer(eng, "iris", IRIS_REQ, 5) == 5, "+8 h: 5 more iris requests 200")
    advance(eng, 3600)
    check(wait_state(eng, "fraud", "scaled-to-zero"), "+9 h: fraud scaled to zero again")
    advance(eng, 15 * 3600 - 120)  # the day ends now, two minutes before the real clock

    # --- ksv cost against the event log ---
    before = engine_now(eng)
    rc, rows = ksv_json("cost", "--since", "25h", "--gb-hour-price", "2")
    after = engine_now(eng)
    check(rc == 0 and isinstance(rows, list), "ksv cost -o json answers a list (%s)" % rows)
    rows = rows if isinstance(rows, list) else []
    got = {(r["namespace"], r["model"], r["revision"]): r for r in rows}
    events = eng.request("GET", "/ksv/v1/events?since=0&limit=5000", admin=True)[2]["events"]
    kinds = [(e["kind"], e["model"]) for e in events if e["model"]]
    check(kinds == [("model-load", "fraud"), ("model-load", "iris"), ("scale-to-zero", "fraud"),
                    ("cold-start", "fraud"), ("scale-to-zero", "fraud")] or
          kinds == [("model-load", "iris"), ("model-load", "fraud"), ("scale-to-zero", "fraud"),
                    ("cold-start", "fraud"), ("scale-to-zero", "fraud")],
          "the engine logged load, scale-to-zero, cold-start, scale-to-zero (%s)" % kinds)
    lo, _ = by_hand(events, before)
    hi, opened = by_hand(events, after)
    ns_of = {"fraud": "team-a", "iris": "team-b"}
    usage = eng.request("GET", "/ksv/v1/usage", admin=True)[2]["revisions"]
    live = {(u["model"], u["revision"]): u for u in usage}
    for model in ("fraud", "iris"):
        rev = model + "-00001"
        key = (model, rev)
        r = got.get((ns_of[model], model, rev))
        check(r is not None, "%s: a cost row in namespace %s" % (model, ns_of[model]))
        if not r:
            continue
        # close the open residency (iris) at both ends of the bracket
        want_lo, want_hi = dict(lo.get(key, {})), dict(hi.get(key, {}))
        if key in live:
            o = opened[key]
            mem = o["mem"]
            for want, end in ((want_lo, before), (want_hi, after)):
                secs = end - o["since"]
                want["loaded_hours"] = want.get("loaded_hours", 0) + secs / 3600
                want["memory_gb_hours"] = want.get("memory_gb_hours", 0) + mem / GB * secs / 3600
                want["requests"] = want.get("requests", 0) + live[key]["requests"]
        for field in ("loaded_hours", "memory_gb_hours", "scaled_to_zero_hours",
                      "saved_gb_hours"):
            a, b = want_lo.get(field, 0.0), want_hi.get(field, 0.0)
            check(min(a, b) - 1e-9 <= r[field] <= max(a, b) + 1e-9,
                  "%s %s = %.6f, by hand from the events %.6f..%.6f" % (model, field, r[field],
                                                                       a, b))
        check(r["requests"] == want_lo["requests"],
              "%s requests %s = %s from the events" % (model, r["requests"], want_lo["requests"]))
        check(near(r["cost"], 2 * r["memory_gb_hours"], 1e-9),
              "%s cost %.8f = 2 x its GB-hours" % (model, r["cost"]))

    f = got.get(("team-a", "fraud", "fraud-00001"), {})
    i = got.get(("team-b", "iris", "iris-00001"), {})
    # What the script did (real seconds pass between steps: a minute of slack).
    check(near(f.get("loaded_hours", 0), 3.0, 0.02), "fraud loaded 3 h (%s)" % f.get("loaded_hours"))
    check(near(f.get("scaled_to_zero_hours", 0), 21.0 - 120 / 3600, 0.02),
          "fraud at zero 21 h (%s)" % f.get("scaled_to_zero_hours"))
    check(near(f.get("idle_loaded_hours", 0), 3.0, 0.02),
          "fraud idle 3 h: the 2 h and 1 h without requests (%s)" % f.get("idle_loaded_hours"))
    check(f.get("requests") == 30, "fraud served 30 requests (%s)" % f.get("requests"))
    check(f.get("saved_gb_hours", 0) > 0 and f.get("memory_gb_hours", 0) > 0,
          "fraud held and saved memory: %.6f GB-h held, %.6f GB-h saved" %
          (f.get("memory_gb_hours", 0), f.get("saved_gb_hours", 0)))
    check(near(i.get("loaded_hours", 0), 24.0 - 120 / 3600, 0.02),
          "iris loaded the whole day (%s)" % i.get("loaded_hours"))
    check(near(i.get("idle_loaded_hours", 0), 24.0 - 120 / 3600, 0.02),
          "iris idle all day: 8 h and 16 h without requests (%s)" % i.get("idle_loaded_hours"))
    check(i.get("requests") == 10, "iris served 10 requests (%s)" % i.get("requests"))
    check(i.get("scaled_to_zero_hours") == 0, "iris never at zero")

    # Each event counted once: a second run gives the same closed figures.
    rc, again = ksv_json("cost", "--since", "25h")
    g2 = {(r["namespace"], r["model"]): r for r in again} if isinstance(again, list) else {}
    check(rc == 0 and g2.get(("team-a", "fraud"), {}).get("loaded_hours") == f.get("loaded_hours"),
          "a second ksv cost counts each event once")
    conn = sqlite3.connect(db)
    n_usage = conn.execute("select count(*) from usage_events").fetchone()[0]
    n_hist = conn.execute("select count(*) from history where action like 'model-%' or "
                          "action in ('cold-start','scale-to-zero')").fetchone()[0]
    conn.close()
    check(n_usage == 6, "the store holds the 6 residency events once each (%d)" % n_usage)
    check(n_hist == 5, "history shows the 5 load/unload events (%d)" % n_hist)

    # -n keeps one namespace; --since clips.
    rc, only = ksv_json("cost", "--since", "25h", "-n", "team-b")
    check(rc == 0 and [r["model"] for r in only] == ["iris"], "-n team-b: iris only (%s)" % only)
    rc, recent = ksv_json("cost", "--since", "10h")
    rf = {r["model"]: r for r in recent} if isinstance(recent, list) else {}
    now_s = time.time()
    clip_lo, _ = by_hand(events, after, since=now_s - 10 * 3600 - 5, until=now_s + 5)
    clip_hi, _ = by_hand(events, after, since=now_s - 10 * 3600 + 5, until=now_s + 5)
    a = clip_lo.get(("fraud", "fraud-00001"), {}).get("scaled_to_zero_hours", 0)
    b = clip_hi.get(("fraud", "fraud-00001"), {}).get("scaled_to_zero_hours", 0)
    check(rc == 0 and min(a, b) - 0.01 <= rf.get("fraud", {}).get("scaled_to_zero_hours", -1)
          <= max(a, b) + 0.01,
          "--since 10h: fraud's time at zero clipped to the window (%s, by hand %.4f..%.4f)" %
          (rf.get("fraud", {}).get("scaled_to_zero_hours"), a, b))
    check(rf.get("iris", {}).get("loaded_hours", 99) <= 10.0 + 1e-6,
          "--since 10h: iris at most 10 loaded hours (%s)" % rf.get("iris", {}).get("loaded_hours"))

    # Prices from the config file; flags win; broken files are refused.
    cfg_dir = os.path.join(work, "config", "ksv")
    os.makedirs(cfg_dir)
    with open(os.path.join(cfg_dir, "config"), "w") as fh:
        fh.write("# prices\ngb-hour-price = 3\ngpu-hour-price = 2.5\n")
    rc, priced = ksv_json("cost", "--since", "25h")
    pf = {r["model"]: r for r in priced} if isinstance(priced, list) else {}
    check(rc == 0 and near(pf.get("iris", {}).get("cost", -1),
                           3 * pf.get("iris", {}).get("memory_gb_hours", 0), 1e-6),
          "the config file's gb-hour-price (3) prices the GB-hours")
    rc, out, err = ksv("cost", "--since", "25h", "--gb-hour-price", "0")
    check(rc == 0 and "TOTAL" in out and "0.0000 per GB-hour" in out,
          "the table ends with TOTAL; a flag overrides the file")
    with open(os.path.join(cfg_dir, "config"), "w") as fh:
        fh.write("gb-hour-price = lots\n")
    rc, out, err = ksv("cost")
    check(rc == 1 and "config:1: gb-hour-price: expected a price" in err,
          "a bad price in the config file: exit 1 naming file and line (%s)" % err.strip())
    with open(os.path.join(cfg_dir, "config"), "w") as fh:
        fh.write("\x00\x01garbage = 1\n" + "x" * 5000 + "\n")
    rc, out, err = ksv("cost")
    check(rc == 1 and "config:1" in err, "a hostile config file: exit 1 (%s)" % err.strip()[:120])
    os.unlink(os.path.join(cfg_dir, "config"))
    check(ksv("cost", "--since", "yesterday")[0] == 2, "--since yesterday: usage error")
    check(ksv("cost", "--gb-hour-price", "-1")[0] == 2, "a negative price: usage error")
    check(eng.request("POST", "/ksv/v1/test/clock", {"advance_s": -5}, admin=True)[0] == 400,
          "the test clock never goes back")

    # An engine without KSV_TEST_CLOCK has no test clock path.
    plain = Engine()
    check(plain.request("POST", "/ksv/v1/test/clock", {"advance_s": 1}, admin=True)[0] == 404,
          "without KSV_TEST_CLOCK, /ksv/v1/test/clock does not exist")
    plain.stop()

    # An unreachable node: its stored events still count, with a warning.
    eng.stop()
    rc, out, err = ksv("--timeout", "5", "cost", "--since", "25h", "-o", "json")
    rows3 = json.loads(out) if rc == 0 else []
    check(rc == 0 and "node n1" in err and any(r["model"] == "fraud" for r in rows3),
          "node down: a warning, stored events still counted (%s)" % err.strip()[:160])
finally:
    pass
finish()
