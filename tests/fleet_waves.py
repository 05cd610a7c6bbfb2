"""Waves on a fleet of 50 real engines (--threads 1) as http:// nodes, with live traffic.

A new revision with `ksv.io/waves: "1,25%,100%"` and `ksv.io/wave-soak: 2s` reaches the
waves in order (1 node, then 13, then the other 36; each wave's history row names exactly
its nodes), and every engine ends serving it; `ksv rollout status` shows each node's wave
and phase. A bad revision (a model that refuses the traffic's rows) fails its soak at
wave 1: the command exits 1 naming the wave and why, the model is rolled back, and no
engine serves the bad revision afterwards (asked of each engine); the engines of waves 2
and 3 never loaded it, by their own state and event log, after the rollback and after a
`ksv reconcile` (it never was rolled out: the promotion comes after the last wave only),
and ksv-top's detail screen
(tmux, when installed) shows each wave's phase and nodes. Malformed annotations are
refused with file and line, and nothing is applied."""
import json
import os
import shutil
import threading
import urllib.request

from fleetnodes import Fleet
from ksvtest import DATA, TOP, check, finish
from tmuxterm import Tmux

N = 50
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                               "data": [6.8, 2.8, 4.8, 1.4]}]}).encode()


def doc(model_file, waves="1,25%,100%", soak="2s", extra=None):
    ann = {"ksv.io/nodes": ",".join(fleet.names), "ksv.io/waves": waves, "ksv.io/wave-soak": soak}
    ann.update(extra or {})
    lines = ["apiVersion: serving.kserve.io/v1beta1", "kind: InferenceService",
             "metadata:", "  name: wv", "  annotations:"]
    lines += ['    %s: "%s"' % kv for kv in ann.items()]
    lines += ["spec:", "  predictor:", "    model:", "      modelFormat:", "        name: xgboost",
              "      storageUri: %s/models/%s" % (DATA, model_file)]
    return "\n".join(lines) + "\n"


def write(name, text):
    path = os.path.join(fleet.work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def traffic(stop):
    """Requests to every node in turn, as fast as one client goes (bounded by stop)."""
    i = 0
    while not stop.is_set():
        node = fleet.names[i % N]
        try:
            req = urllib.request.Request("http://%s/v2/models/wv/infer" % fleet.addr[node], data=BODY,
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5).read()
        except OSError:
            pass
        i += 1
        # n000 is wave 1 alone: every other request goes to it, so its soak has figures.
        if i % 2:
            try:
                req = urllib.request.Request("http://%s/v2/models/wv/infer" % fleet.addr["n000"],
                                             data=BODY, headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=5).read()
            except OSError:
                pass
        stop.wait(0.005)


def ksv_rows(model):
    """ksv's own history rows of model, newest first (the engines' events imported into
    history, actor engine@NODE, left out)."""
    rc, hist = fleet.ksv_json("history", model, "--limit", "2000")
    return rc, [h for h in hist if not h["actor"].startswith("engine@")] if rc == 0 else []


def serving():
    """Each engine's effective split of wv."""
    return {n: (fleet.model_state(n, "wv") or {}).get("effective_traffic") for n in fleet.names}


fleet = Fleet(N)
stop = threading.Event()
try:
    bad = fleet.register()
    check(not bad, "%d engines registered %s" % (N, bad[:2]))
    rc, _, err = fleet.ksv("--timeout", "120", "apply", "-f", write("v1.yaml", doc("iris/model.json")),
                           timeout=300)
    check(rc == 0, "the first revision everywhere at once: nothing to roll back to, no waves (%s)"
          % err.strip()[-300:])
    check(all(v == {"wv-00001": 100} for v in serving().values()), "every engine serves wv-00001")
    sender = threading.Thread(target=traffic, args=(stop,), daemon=True)
    sender.start()

    # A good revision, in three waves.
    rc, out, err = fleet.ksv("--timeout", "120", "apply", "-f", write("v2.yaml", doc("iris-ubj/model.ubj")),
                             timeout=300)
    check(rc == 0, "v2 in waves: exit 0 (%s)" % (err.strip()[-400:]))
    now = serving()
    check(all(v == {"wv-00002": 100} for v in now.values()),
          "every engine serves wv-00002 (%s)" % [n for n, v in now.items() if v != {"wv-00002": 100}][:3])
    rc, hist = ksv_rows("wv")
    waves = [h for h in hist if h["action"] == "wave"][::-1] if rc == 0 else []
    plan = [h for h in hist if h["action"] == "waves"] if rc == 0 else []
    check(plan and plan[0]["new"] == "wv-00002 in 3 waves" and len(plan[0]["nodes"]) == N,
          "history: the plan, every node with its wave (%s)" % (plan[:1],))
    got = [(h["new"], sorted(h["nodes"])) for h in waves]
    want = [("wv-00002 wave 1/3", ["n000"]), ("wv-00002 wave 2/3", fleet.names[1:13]),
            ("wv-00002 wave 3/3", fleet.names[13:])]
    check(got == want, "history: three waves in order, 1 then 12 more (25%% of 50 is 13) then 37, "
          "each naming exactly its nodes (%s)" % [(g[0], len(g[1])) for g in got])
    check(all(h["result"].startswith("succeeded") for h in waves),
          "each wave succeeded after its soak (%s)" % [h["result"] for h in waves])
    # wv-00002 became the rolled-out revision only once every wave succeeded: the apply
    # stored it beside the stable one, the promotion came after wave 3/3.
    newest = [(h["action"], h["new"]) for h in hist[:7]][::-1] if rc == 0 else []
    check(newest == [("apply", "wv-00002 in waves over wv-00001"), ("waves", "wv-00002 in 3 waves"),
                     ("wave", "wv-00002 wave 1/3"), ("wave", "wv-00002 wave 2/3"), ("wave", "wv-00002 wave 3/3"),
                     ("promote", "wv-00002=100 (promoted)"), ("reconcile", "wv-00002=100")],
          "history: apply, plan, three waves, then the promotion and its push (%s)" % newest)
    if rc == 0 and len(hist) > 2:
        print("the promotion and its push to %d nodes: %.2f s after wave 3/3's row"
              % (N, (hist[0]["at_ms"] - hist[2]["at_ms"]) / 1000.0))
    check(any("requests" in h["result"] and "0.0% errors" in h["result"] for h in waves),
          "the soak judged real traffic (%s)" % waves[0]["result"] if waves else "")
    rc, st = fleet.ksv_json("rollout", "status", "wv")
    w = st.get("waves") or {} if rc == 0 else {}
    phases = {n["node"]: (n["wave"], n["phase"]) for n in w.get("nodes", [])}
    check(w.get("revision") == "wv-00002" and len(phases) == N and phases["n000"] == (1, "succeeded")
          and phases["n005"] == (2, "succeeded") and phases["n049"] == (3, "succeeded"),
          "rollout status -o json: each node's wave and phase (%s)" % list(phases.items())[:3])
    rc, out, _ = fleet.ksv("rollout", "status", "wv")
    check(rc == 0 and "Waves (wv-00002, 3):" in out and "node n049: wave 3/3 succeeded" in out,
          "rollout status: the waves in text")

    # A bad revision: it refuses the traffic's rows (8 features expected), so wave 1 fails.
    rc, out, err = fleet.ksv("--timeout", "120", "apply", "-f", write("v3.yaml", doc("churn-v1/model.json")),
                             timeout=300)
    check(rc == 1 and "wave 1/3 failed" in err and "errors" in err and "rolled back" in err,
          "a bad revision: exit 1 at wave 1, why, rolled back (%s)" % err.strip()[-400:])
    now = serving()
    check(all(v == {"wv-00002": 100} for v in now.values()),
          "no engine serves wv-00003; n000 is back on wv-00002 (%s)" %
          [(n, v) for n, v in now.items() if v != {"wv-00002": 100}][:3])
    rc, st = fleet.ksv_json("rollout", "status", "wv")
    w = st.get("waves") or {} if rc == 0 else {}
    phases = {n["node"]: n["phase"] for n in w.get("nodes", [])}
    check(w.get("revision") == "wv-00003" and phases.get("n000") == "failed, rolled back" and
          phases.get("n001") == "not started" and phases.get("n049") == "not started",
          "rollout status: wave 1 failed and rolled back, the others never started (%s)"
          % [phases.get(n) for n in ("n000", "n001", "n049")])
    rc, hist = ksv_rows("wv")
    actions = [h["action"] for h in hist] if rc == 0 else []
    check(actions[:4] == ["reconcile", "rollback", "wave", "waves"] and
          hist[2]["result"].startswith("failed") and sorted(hist[2]["nodes"]) == ["n000"],
          "history: the plan, the failed wave (n000), the rollback and its push (%s)" % actions[:4])
    # The failed revision left no trace on the nodes of the waves that never ran, by their
    # own state and event log (the rollback reached every node: it must not have sent
    # wv-00003 along as a standby copy), and a reconcile sends it nowhere either.
    for when in ("after the rollback", "after ksv reconcile"):
        if when == "after ksv reconcile":
            rc, _, err = fleet.ksv("--timeout", "120", "reconcile", "wv", timeout=300)
            check(rc == 0, "ksv reconcile wv: exit 0 (%s)" % err.strip()[-300:])
        loaded = [n for n in fleet.names[1:] if any(e.get("revision") == "wv-00003" for e in fleet.events(n))]
        check(not loaded, "%s: no engine of waves 2 and 3 has an event about wv-00003, no model-load "
              "(%d of %d: %s)" % (when, len(loaded), N - 1, loaded[:3]))
        held = [n for n in fleet.names
                if any(r["name"] == "wv-00003" for r in (fleet.model_state(n, "wv") or {}).get("revisions", []))]
        check(not held, "%s: no engine holds wv-00003 in its state, n000 included (%s)" % (when, held[:3]))
        now = serving()
        check(all(v == {"wv-00002": 100} for v in now.values()), "%s: every engine serves wv-00002 (%s)"
              % (when, [(n, v) for n, v in now.items() if v != {"wv-00002": 100}][:3]))
    ev0 = [e["kind"] for e in fleet.events("n000") if e.get("revision") == "wv-00003"]
    check(ev0[:1] == ["model-load"] and "model-unload" in ev0,
          "wave 1's engine loaded wv-00003 and unloaded it at the rollback (%s)" % ev0)

    # ksv-top's detail screen of the model shows each wave's nodes and phase.
    if shutil.which("tmux"):
        term = Tmux("ksvwaves")
        try:
            term.start([TOP, "-d", "1"], fleet.console_env(), cols=160, lines=50)
            term.wait_for(lambda t: " wv " in t or "default/wv" in t or "\nwv" in t or " wv\n" in t, timeout=20)
            term.keys("Enter")
            scr = term.wait_for(lambda t: "WAVES wv-00003 in 3 waves" in t and "wave 3/3" in t, timeout=20)
            check("WAVES wv-00003 in 3 waves" in scr and "wave 1/3 failed, rolled back: n000" in scr and
                  "wave 2/3 not started: n001, n002, n003, n004, ... (12 nodes)" in scr and
                  "wave 3/3 not started: n013" in scr,
                  "ksv-top: the model's waves, each with its phase and nodes (%s)"
                  % [l.strip() for l in scr.splitlines() if "wave" in l.lower()][:4])
        finally:
            term.kill()

    # Malformed annotations: file and line, nothing applied.
    for waves, soak, why in (("0", "2s", "expected wave sizes"), ("25%,10%", "2s", "larger than the one before"),
                             ("1,x", "2s", "expected wave sizes"), ("1", "forever", "expected a duration")):
        rc, _, err = fleet.ksv("apply", "-f", write("bad.yaml", doc("iris/model.json", waves, soak)))
        check(rc == 1 and "bad.yaml:" in err and why in err, "waves %r soak %r refused: %s" % (waves, soak, err.strip()))
    rc, revs = fleet.ksv_json("get", "revisions", "wv")
    check(rc == 0 and len(revs.get("revisions", revs) if isinstance(revs, dict) else revs) == 3,
          "no revision was made by the refused files")
finally:
    stop.set()
    fleet.close()
finish()
