"""Waves with a release gate, and an interrupted waved apply resumed, on 6 real engines
(--threads 1) as http:// nodes, with live traffic on every node.

With a Flagger Canary and `ksv.io/waves: "1,50%,100%"`, each wave's nodes load the new
revision at 0% and run the gate; the next wave starts only when every gate of the wave
promoted: each engine's own event log shows wave 2's gates starting after wave 1's node
promoted, and wave 3's after wave 2's. A bad revision's gate fails at wave 1: exit 1 naming
the wave, rolled back, and no engine serves it. An apply killed after its first wave, run
again with the same file, resumes at the wave it stopped at (history: one plan, one row
per wave, a wave-resume row) and ends with every engine on the new revision: for the gated
model and for a second one whose waves only soak. `ksv reconcile` of the interrupted rollout
pushes to wave 1's node only and reports the others as left for the apply to resume."""
import http.client
import json
import signal
import subprocess
import threading
import time

from fleetnodes import Fleet
from ksvtest import DATA, KSV, canary_yaml, check, finish

N = 6
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                               "data": [6.8, 2.8, 4.8, 1.4]}]})
WAVES = [["n000"], ["n001", "n002"], ["n003", "n004", "n005"]]  # 1, 50% of 6, 100%
CANARY = canary_yaml("wv", [50], interval="1s", threshold=2, min_requests=5, name="wv-gate",
                     deadline=120)


def doc(model_file, canary=True, soak="1s", name="wv"):
    ann = {"ksv.io/nodes": ",".join(fleet.names), "ksv.io/waves": "1,50%,100%", "ksv.io/wave-soak": soak}
    lines = ["apiVersion: serving.kserve.io/v1beta1", "kind: InferenceService",
             "metadata:", "  name: " + name, "  annotations:"]
    lines += ['    %s: "%s"' % kv for kv in ann.items()]
    lines += ["spec:", "  predictor:", "    model:", "      modelFormat:", "        name: xgboost",
              "      storageUri: %s/models/%s" % (DATA, model_file)]
    return "\n".join(lines) + "\n" + (CANARY if canary else "")


def traffic(stop, nodes):
    """Requests to each node in turn over kept connections (bounded by stop)."""
    conns = {}
    i = 0
    while not stop.is_set():
        node = nodes[i % len(nodes)]
        i += 1
        try:
            if node not in conns:
                host, port = fleet.addr[node].rsplit(":", 1)
                conns[node] = http.client.HTTPConnection(host, int(port), timeout=5)
            c = conns[node]
            c.request("POST", "/v2/models/wv/infer", body=BODY,
                      headers={"Content-Type": "application/json"})
            c.getresponse().read()
        except (OSError, http.client.HTTPException):
            conns.pop(node, None)
        stop.wait(0.002)


def gate_events(node, canary):
    """(time, kind) of node's gate events about revision canary, oldest first."""
    st, body = fleet.admin(node, "GET", "/ksv/v1/events?since=0&limit=1000")
    evs = body.get("events", []) if st == 200 and body else []
    return [(e["time"], e["kind"]) for e in evs
            if e.get("kind", "").startswith("gate-") and e.get("revision") == canary]


def first_time(events, kinds):
    ts = [t for t, k in events if k in kinds]
    return min(ts) if ts else None


def ksv_rows(model="wv"):
    rc, hist = fleet.ksv_json("history", model, "--limit", "2000")
    return [h for h in hist if not h["actor"].startswith(("engine@", "gate@"))] if rc == 0 else []


def check_order(canary, label):
    """Each wave's gates started after every gate of the wave before it succeeded."""
    ev = {n: gate_events(n, canary) for n in fleet.names}
    ok, detail = True, []
    for k in range(1, len(WAVES)):
        done = [first_time(ev[n], ("gate-succeeded",)) for n in WAVES[k - 1]]
        began = [min((t for t, _ in ev[n]), default=None) for n in WAVES[k]]
        if None in done or None in began or min(began) < max(done):
            ok = False
        detail.append((k + 1, done, began))
    check(ok, "%s: each wave's gates began after the wave before promoted (%s)" % (label, detail))


fleet = Fleet(N)
stop = threading.Event()
try:
    bad = fleet.register()
    check(not bad, "%d engines registered %s" % (N, bad[:2]))
    rc, _, err = fleet.ksv("--timeout", "120", "apply", "-f", fleet.write("v1.yaml", doc("iris/model.json")),
                           timeout=300)
    check(rc == 0, "the first revision everywhere (%s)" % err.strip()[-300:])
    senders = [threading.Thread(target=traffic, args=(stop, fleet.names[i::2]), daemon=True)
               for i in range(2)]
    for t in senders:
        t.start()

    # A good revision, gated wave by wave.
    t0 = time.time()
    rc, out, err = fleet.ksv("--timeout", "120", "apply", "-f", fleet.write("v2.yaml", doc("iris-ubj/model.ubj")),
                             timeout=400)
    check(rc == 0, "v2 gated in waves: exit 0 in %.0f s (%s)" % (time.time() - t0, err.strip()[-400:]))
    now = fleet.serving("wv")
    check(all(v == {"wv-00002": 100} for v in now.values()),
          "every engine's gate promoted wv-00002 (%s)" % now)
    rows = ksv_rows()
    plan = [h for h in rows if h["action"] == "waves"]
    waves = [h for h in rows if h["action"] == "wave"][::-1]
    check(plan and plan[0]["new"] == "wv-00002 in 3 waves, gated",
          "history: the gated plan (%s)" % (plan[0]["new"] if plan else None))
    got = [(h["new"], sorted(h["nodes"]), h["result"].split(":")[0]) for h in waves]
    check(got == [("wv-00002 wave %d/3" % (k + 1), WAVES[k], "succeeded") for k in range(3)],
          "history: three waves in order, each naming its nodes, each succeeded (%s)" % got)
    check_order("wv-00002", "v2")
    rc, st = fleet.ksv_json("rollout", "status", "wv")
    phases = {n["node"]: n["phase"] for n in (st.get("waves") or {}).get("nodes", [])} if rc == 0 else {}
    check(len(phases) == N and set(phases.values()) == {"succeeded"},
          "rollout status: every node's wave succeeded (%s)" % phases)
    check(rc == 0 and {r["name"]: r["traffic"] for r in st.get("revisions", [])}.get("wv-00002") == 100,
          "the desired split followed the gates: wv-00002 at 100%")

    # A bad revision (a model that refuses iris rows): wave 1's gate fails, nothing goes on.
    bad_doc = fleet.write("v3.yaml", doc("churn-v1/model.json"))
    rc, out, err = fleet.ksv("--timeout", "120", "apply", "-f", bad_doc, timeout=400)
    why = err.strip()[-400:]
    check(rc == 1 and all(w in err for w in ("wave 1/3 failed", "gate Failed", "rolled back")),
          "a bad revision: exit 1 at wave 1's gate, rolled back (%s)" % why)
    check(set(map(str, fleet.serving("wv").values())) == {str({"wv-00002": 100})},
          "no engine serves wv-00003 (%s)" % fleet.serving("wv"))
    later = [n for n in fleet.names[1:] if gate_events(n, "wv-00003")]
    check(not later, "no gate of wv-00003 ran past wave 1 (%s)" % later)

    # An interrupted apply: killed once wave 1 succeeded, resumed by the same command, for
    # the gated model and for one whose waves soak (no Canary).
    rc, _, err = fleet.ksv("--timeout", "120", "apply", "-f",
                           fleet.write("n1.yaml", doc("iris/model.json", canary=False, name="wn")),
                           timeout=300)
    check(rc == 0, "wn's first revision everywhere (%s)" % err.strip()[-300:])
    for model, rev, model_file, plan in (("wv", "wv-00004", "iris/model.json", "wv-00004 in 3 waves, gated"),
                                         ("wn", "wn-00002", "iris-ubj/model.ubj", "wn-00002 in 3 waves")):
        # A 3 s soak: the apply is still in wave 2 when the poll below sees wave 1's row.
        path = fleet.write(model + "-resume.yaml", doc(model_file, canary=model == "wv", soak="3s", name=model))
        p = subprocess.Popen([KSV, "--timeout", "120", "apply", "-f", path], env=fleet.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        killed = False
        while time.time() < deadline and p.poll() is None:
            if any(h["action"] == "wave" and h["new"] == rev + " wave 1/3" for h in ksv_rows(model)):
                p.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.2)
        p.communicate(timeout=30)
        check(killed, "the apply was killed after wave 1 of %s" % rev)
        # A reconcile meanwhile (or ksv-top catching a node up) keeps to the waves: wave 1's
        # node keeps the new revision, the nodes the waves have not reached are left alone.
        rc, out, err = fleet.ksv("--timeout", "60", "reconcile", model, timeout=200)
        now = fleet.serving(model)
        reached = [n for n in WAVES[0] if rev in (now.get(n) or {})]
        late = [n for n in WAVES[2] if rev in (now.get(n) or {})]
        left = [n for n in WAVES[1] + WAVES[2] if "node %s: ok: left as it is" % n in out]
        check(rc == 0 and reached == WAVES[0] and not late and left == WAVES[1] + WAVES[2],
              "ksv reconcile of the unfinished %s: wave 1 reconciled, waves 2 and 3 left for the "
              "apply (late %s, left %s; %s)" % (rev, late, left, (out + err).strip()[-300:]))
        rc, out, err = fleet.ksv("--timeout", "120", "apply", "-f", path, timeout=400)
        check(rc == 0, "the same apply again resumes %s and ends (%s)" % (model, err.strip()[-400:]))
        rows = [h for h in ksv_rows(model) if rev in (h["new"] or "")]
        names = [(h["action"], h["new"]) for h in rows[::-1] if h["action"] in ("waves", "wave", "wave-resume")]
        check(names == [("waves", plan), ("wave", rev + " wave 1/3"), ("wave-resume", rev + " from wave 2/3"),
                        ("wave", rev + " wave 2/3"), ("wave", rev + " wave 3/3")],
              "%s history: one plan, wave 1 once, the resume, then waves 2 and 3 (%s)" % (model, names))
        now = fleet.serving(model)
        check(all(v == {rev: 100} for v in now.values()), "every engine serves %s (%s)" % (rev, now))
        rc, out, err = fleet.ksv("--timeout", "60", "apply", "-f", path, timeout=200)
        check(rc == 0 and not any(h["action"] == "wave-resume" for h in ksv_rows(model)[:3]),
              "a finished waved rollout of %s is not resumed again (%s)" % (model, err.strip()[-200:]))
    check_order("wv-00004", "resumed")
finally:
    stop.set()
    fleet.close()
finish()
