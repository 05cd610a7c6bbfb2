"""The engine's event log over HTTP: GET /ksv/v1/events?since=SEQ on a real ksv-engine.

Checks the admin token, the query validation, that the log lives in the state dir and
survives a SIGTERM restart and a kill -9 (seq keeps counting, nothing is repeated), and that
a small rotation size (KSV_EVENTS_MAX_BYTES) keeps the files bounded while seq stays
monotonic. The unit test test_events.c covers the file format in depth."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ksvtest as kt  # noqa: E402
from ksvtest import check  # noqa: E402


def events(eng, since=None, limit=None, admin=True):
    q = []
    if since is not None:
        q.append("since=%s" % since)
    if limit is not None:
        q.append("limit=%s" % limit)
    path = "/ksv/v1/events" + ("?" + "&".join(q) if q else "")
    return eng.request("GET", path, admin=admin)


def starts(page):
    return [e for e in page["events"] if e["kind"] == "engine-start"]


state = kt.tmpdir("ksv-events-")
eng = kt.Engine(state_dir=state)

st, _, body = events(eng, admin=False)
check(st == 401, "events need the admin token (got %d)" % st)
st, _, body = events(eng, since="abc")
check(st == 400 and "since" in body.get("error", ""), "since=abc is a 400 naming since")
st, _, body = events(eng, since="-1")
check(st == 400, "a negative since is a 400")
st, _, body = events(eng, since="99999999999999999999999")
check(st == 400, "a since beyond 64 bits is a 400")
st, _, body = eng.request("POST", "/ksv/v1/events", body={}, admin=True)
check(st == 405, "POST to events is a 405")

st, _, p1 = events(eng)
check(st == 200 and isinstance(p1.get("events"), list), "GET events answers a list")
check(len(starts(p1)) == 1, "the engine recorded its start")
e = p1["events"][0]
check(set(e) >= {"seq", "time", "model", "revision", "kind", "message", "figures"},
      "an event has seq, time, model, revision, kind, message, figures: %s" % sorted(e))
check(e["seq"] == 1 and p1["last_seq"] == 1 and p1["first_seq"] == 1, "first seq is 1")
check(isinstance(p1.get("log_id"), str) and len(p1["log_id"]) == 16, "the log has an id")
check(os.path.exists(os.path.join(state, "events.log")), "the log is in the state dir")
st, _, empty = events(eng, since=p1["last_seq"])
check(st == 200 and empty["events"] == [] and empty["more"] is False,
      "since=last_seq: nothing new")

# A graceful restart and a kill -9: seq continues, earlier events stay, none repeats.
eng.stop()
eng.start()
eng.kill9()
eng.start()
st, _, p2 = events(eng, since=0)
seqs = [e["seq"] for e in p2["events"]]
check(seqs == list(range(1, len(seqs) + 1)) and len(starts(p2)) == 3,
      "three starts, seqs 1..%d without gaps or repeats: %s" % (len(seqs), seqs))
check(p2["log_id"] == p1["log_id"], "the log id survives restarts")
st, _, p3 = events(eng, since=1, limit=1)
check([e["seq"] for e in p3["events"]] == [2] and p3["more"] is True,
      "limit=1 gives one event and says more")
eng.stop()

# Rotation: a tiny bound, many engine starts; files stay bounded, seq stays monotonic.
state2 = kt.tmpdir("ksv-events-rot-")
eng2 = kt.Engine(state_dir=state2, extra_env={"KSV_EVENTS_MAX_BYTES": "1024"})
for _ in range(24):  # each start line is ~150 bytes: several rotations of a 1 KiB file
    eng2.stop()
    eng2.start()
st, _, p4 = events(eng2, since=0)
seqs = [e["seq"] for e in p4["events"]]
check(p4["last_seq"] == 25 and seqs[-1] == 25, "25 starts, last seq 25 (%s)" % p4["last_seq"])
check(seqs == list(range(p4["first_seq"], 26)), "kept events are consecutive up to the last")
sizes = [os.path.getsize(os.path.join(state2, f)) for f in ("events.log", "events.1.log")
         if os.path.exists(os.path.join(state2, f))]
check(len(sizes) == 2 and max(sizes) <= 1024, "rotated files stay under 1024 bytes: %s" % sizes)
eng2.stop()
kt.finish()
