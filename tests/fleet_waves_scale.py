"""Gated waves at fleet scale: 52 real engines (--threads 1) as http:// nodes, a Flagger
Canary and `ksv.io/waves: "1,25%,100%"` (1 node, then 12 more, then the other 39), with
light live traffic on every node the whole time.

A good revision goes through the three waves: each engine's own event log shows a wave's
gates starting only after every gate of the wave before promoted, every engine ends
serving it, and no client request failed. Then a bad revision (a model that expects 8
features: it answers every iris row 400) fails its gate at wave 1: `ksv apply` exits 1
naming the wave, wave 1 is rolled back, `ksv history` records it, and no engine of waves
2 and 3 ever loaded or served it (their own event logs and states, not ksv's word); the
stable revision answered every request 200 throughout. Prints each wave's timings."""
import collections
import http.client
import json
import threading
import time

from fleetnodes import Fleet
from ksvtest import DATA, canary_yaml, check, finish

N = 52
SENDERS = 8
PER_NODE_RPS = 6  # light; a gate at 50% still sees its minRequests in most 1 s windows
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                               "data": [6.8, 2.8, 4.8, 1.4]}]})
CANARY = canary_yaml("wv", [50], interval="1s", threshold=2, min_requests=2, name="wv-gate",
                     deadline=60)
T_START = time.time()


def doc(model_file):
    ann = {"ksv.io/nodes": ",".join(fleet.names), "ksv.io/waves": "1,25%,100%"}
    lines = ["apiVersion: serving.kserve.io/v1beta1", "kind: InferenceService",
             "metadata:", "  name: wv", "  annotations:"]
    lines += ['    %s: "%s"' % kv for kv in ann.items()]
    lines += ["spec:", "  predictor:", "    model:", "      modelFormat:", "        name: xgboost",
              "      storageUri: %s/models/%s" % (DATA, model_file)]
    return "\n".join(lines) + "\n" + CANARY


class FleetLoad:
    """SENDERS threads, each posting to its share of the nodes in turn over kept
    connections, about PER_NODE_RPS requests a second to each node; answers counted by
    (node, ksv-revision header, status), a failed request as (node, "exception", 0)."""

    def __init__(self, nodes):
        self.stop_ev = threading.Event()
        self.counts = collections.Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(nodes[i::SENDERS],), daemon=True)
                        for i in range(SENDERS)]
        for t in self.threads:
            t.start()

    def run(self, nodes):
        conns = {}
        while not self.stop_ev.is_set():
            t0 = time.time()
            for node in nodes:
                try:
                    if node not in conns:
                        host, port = fleet.addr[node].rsplit(":", 1)
                        conns[node] = http.client.HTTPConnection(host, int(port), timeout=10)
                    conns[node].request("POST", "/v2/models/wv/infer", body=BODY,
                                        headers={"Content-Type": "application/json"})
                    r = conns[node].getresponse()
                    r.read()
                    key = (node, r.getheader("ksv-revision"), r.status)
                except (OSError, http.client.HTTPException):
                    conns.pop(node, None)
                    key = (node, "exception", 0)
                with self.lock:
                    self.counts[key] += 1
            self.stop_ev.wait(max(0.0, 1.0 / PER_NODE_RPS - (time.time() - t0)))

    def take(self):
        """The counts so far, and starts counting again from zero."""
        with self.lock:
            c, self.counts = self.counts, collections.Counter()
        return c

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(15)
        return self.take()


def ksv_rows():
    rc, hist = fleet.ksv_json("history", "wv", "--limit", "3000")
    return [h for h in hist if not h["actor"].startswith(("engine@", "gate@"))] if rc == 0 else []


def failed(counts, allowed=()):
    """Answers that were not 200, except (revision, status) pairs in allowed."""
    return {k: n for k, n in counts.items() if k[2] != 200 and (k[1], k[2]) not in allowed}


fleet = Fleet(N)
load = None
try:
    bad = fleet.register()
    check(not bad, "%d engines registered %s" % (N, bad[:2]))
    t_ready = time.time()
    rc, _, err = fleet.ksv("--timeout", "60", "apply", "-f", fleet.write("v1.yaml", doc("iris/model.json")))
    check(rc == 0, "wv-00001 on every node at once (%s)" % err.strip()[-300:])
    t_v1 = time.time()
    load = FleetLoad(fleet.names)
    time.sleep(1)

    # --- a good revision, gated wave by wave -------------------------------------------
    rows_before = len(ksv_rows())
    t0 = time.time()
    rc, out, err = fleet.ksv("--timeout", "90", "apply", "-f", fleet.write("v2.yaml", doc("iris-ubj/model.ubj")),
                             timeout=400)
    t_v2 = time.time() - t0
    check(rc == 0, "wv-00002 gated in waves: exit 0 in %.1f s (%s)" % (t_v2, err.strip()[-400:]))
    time.sleep(0.5)
    counts = load.take()
    check(not failed(counts), "no client request failed during the waves (%d answers; %s)"
          % (sum(counts.values()), failed(counts)))
    check(all(counts[(n, "wv-00002", 200)] > 0 for n in fleet.names),
          "every engine answered with wv-00002 (%d of %d)"
          % (sum(counts[(n, "wv-00002", 200)] > 0 for n in fleet.names), N))
    now = fleet.serving("wv")
    check(all(v == {"wv-00002": 100} for v in now.values()),
          "every engine serves wv-00002 at 100%% (%d of %d)"
          % (sum(v == {"wv-00002": 100} for v in now.values()), N))
    rows = ksv_rows()
    rows = rows[:len(rows) - rows_before]  # newest first: this apply's rows
    plan = [h for h in rows if h["action"] == "waves"]
    waves = [h for h in rows if h["action"] == "wave"][::-1]
    check(len(plan) == 1 and plan[0]["new"] == "wv-00002 in 3 waves, gated",
          "history: the gated plan (%s)" % [h["new"] for h in plan])
    ends = [1, 13, N]  # 1 node, ceil(25% of 52) = 13 in all, then everything
    groups = [fleet.names[a:b] for a, b in zip([0] + ends, ends)]
    got = [(h["new"], sorted(h["nodes"]), h["result"].split(":")[0]) for h in waves]
    check(got == [("wv-00002 wave %d/3" % (k + 1), groups[k], "succeeded") for k in range(3)],
          "history: waves of 1, 12 and 39 nodes in order, each succeeded (%s)"
          % [(w, len(n), r) for w, n, r in got])
    ev = {n: [e for e in fleet.events(n) if e.get("revision") == "wv-00002"] for n in fleet.names}
    gates = {n: [e for e in ev[n] if e["kind"].startswith("gate-")] for n in fleet.names}
    began = [min((e["time"] for n in g for e in gates[n]), default=None) for g in groups]
    first = [[min((e["time"] for e in gates[n]), default=None) for n in g] for g in groups]
    done = [[min((e["time"] for e in gates[n] if e["kind"] == "gate-succeeded"), default=None)
             for n in g] for g in groups]
    order_ok = all(None not in done[k] and None not in first[k] for k in range(3)) and all(
        min(first[k + 1]) >= max(done[k]) for k in range(2))
    check(order_ok, "each engine's event log: wave 2's gates began after wave 1's promoted, "
          "wave 3's after wave 2's")
    loads = {n: [e for e in ev[n] if e["kind"] == "model-load"] for n in fleet.names}
    early = [n for k in range(1, 3) for n in groups[k]
             if any(e["time"] < max(done[k - 1]) for e in loads[n])]
    check(not early, "no node of a later wave loaded wv-00002 before the wave before it promoted (%s)" % early[:3])
    for k in range(3):
        if None not in done[k] and began[k] is not None:
            print("wave %d (%2d nodes): gates %.1f-%.1f s after the apply began (%.1f s)"
                  % (k + 1, len(groups[k]), began[k] - t0, max(done[k]) - t0, max(done[k]) - began[k]))
    print("good revision, 3 gated waves: %.1f s" % t_v2)
    # The engines' events in history (read from the nodes side by side, written on one
    # thread): each node's in its own order, each once, by the engine's own seq numbers.
    rc, hist = fleet.ksv_json("history", "wv", "--limit", "50000")
    seqs = collections.defaultdict(list)
    for h in reversed(hist if rc == 0 else []):
        if h["node"] and h["actor"] in ("gate@" + h["node"], "engine@" + h["node"]):
            seqs[h["node"]].append(int(h["old"].split()[1]))
    ev_all = {n: [e for e in fleet.events(n) if e.get("model") == "wv"] for n in fleet.names}
    own = {n: [e["seq"] for e in ev_all[n]] for n in fleet.names}
    # A prefix: an engine may log more after `ksv history` read it, never less; the gates'
    # steps of wv-00002 all in it.
    wrong = [n for n in fleet.names if seqs[n] != own[n][:len(seqs[n])] or not
             {e["seq"] for e in ev_all[n] if e["kind"].startswith("gate-") and e.get("revision") == "wv-00002"}
             <= set(seqs[n]) or not any(e["kind"] == "gate-succeeded" for e in ev_all[n])]
    check(not wrong, "history holds each engine's events in its order, each once (%d of %d nodes; %s)"
          % (N - len(wrong), N, [(n, seqs[n][:8], own[n][:8]) for n in wrong[:2]]))
    if None not in done[2]:
        print("the apply ended %.2f s after wave 3's last gate promoted" % (t0 + t_v2 - max(done[2])))

    # --- a bad revision: wave 1's gate fails, nothing goes on --------------------------
    rows_before = len(ksv_rows())
    t0 = time.time()
    rc, out, err = fleet.ksv("--timeout", "90", "apply", "-f", fleet.write("v3.yaml", doc("churn-v1/model.json")),
                             timeout=400)
    t_v3 = time.time() - t0
    time.sleep(0.5)
    counts = load.stop()
    load = None
    check(rc == 1 and all(w in err for w in ("wave 1/3 failed", "gate Failed", "rolled back")),
          "a bad revision: exit 1 at wave 1's gate, rolled back, in %.1f s (%s)" % (t_v3, err.strip()[-400:]))
    print("bad revision, stopped at wave 1: %.1f s" % t_v3)
    check(not failed(counts, allowed={("wv-00003", 400)}),
          "the stable revision answered every request 200 (%d answers; %s)"
          % (sum(counts.values()), failed(counts, allowed={("wv-00003", 400)})))
    bad_answers = {k[0] for k, n in counts.items() if k[1] == "wv-00003"}
    check(bad_answers <= {fleet.names[0]} and counts[(fleet.names[0], "wv-00003", 400)] > 0,
          "only wave 1's node answered with wv-00003, 400 each time (%s)" % sorted(bad_answers)[:3])
    now = fleet.serving("wv")
    check(all(v == {"wv-00002": 100} for v in now.values()),
          "every engine serves wv-00002 alone again (%s)"
          % {n: v for n, v in now.items() if v != {"wv-00002": 100}})
    touched = [n for n in fleet.names[1:] if any(e.get("revision") == "wv-00003" for e in fleet.events(n))]
    check(not touched, "no engine of waves 2 and 3 has an event about wv-00003: never loaded, "
          "never gated (%s)" % touched[:3])
    held = [n for n in fleet.names[1:]
            if any(r["name"] == "wv-00003" for r in (fleet.model_state(n, "wv") or {}).get("revisions", []))]
    check(not held, "no engine of waves 2 and 3 holds wv-00003 in its state (%s)" % held[:3])
    ev0 = [e["kind"] for e in fleet.events(fleet.names[0]) if e.get("revision") == "wv-00003"]
    check("model-load" in ev0 and "gate-rollback" in ev0,
          "wave 1's engine loaded wv-00003 and its gate rolled it back (%s)" % ev0)
    rows = ksv_rows()
    rows = rows[:len(rows) - rows_before]  # newest first: this apply's rows
    acts = [(h["action"], h["new"], (h["result"] or "").split(":")[0]) for h in rows[::-1]]
    wave_rows = [a for a in acts if a[0] == "wave"]
    check(("waves", "wv-00003 in 3 waves, gated", "planned") in acts and
          wave_rows == [("wave", "wv-00003 wave 1/3", "failed")] and
          any(a[0] == "rollback" for a in acts),
          "history: the plan, wave 1/3 failed, the rollback, no other wave (%s)" % acts)
    rc, st = fleet.ksv_json("rollout", "status", "wv")
    phases = collections.Counter(n["phase"] for n in (st.get("waves") or {}).get("nodes", [])) if rc == 0 else {}
    check(phases == {"failed, rolled back": 1, "not started": N - 1},
          "rollout status: wave 1 failed and rolled back, the other %d nodes not started (%s)"
          % (N - 1, dict(phases)))
    print("52 engines up and registered: %.1f s; first revision everywhere: %.1f s; whole test %.1f s"
          % (t_ready - T_START, t_v1 - t_ready, time.time() - T_START))
finally:
    if load:
        load.stop()
    fleet.close()
finish()
