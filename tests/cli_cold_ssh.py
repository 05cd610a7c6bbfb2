"""A scaled-to-zero model on an edge node reached over SSH (a real sshd on loopback,
tests/sshnode.py) comes back on its first request with the link cut (DESIGN.md §11, issue 13).

ksv starts the edge's engine and uploads the model over SSH; the model has minReplicas 0
and a 1 s window, so it scales to zero on the edge. Then the link is cut (sshd and its
sessions stopped). Twenty clients of the edge call its engine directly and at once, as they
would: every one is answered 200 with XGBoost's own prediction, none is lost, and the edge
counts exactly one cold start. It scales to zero again; when the link returns, `ksv cost`
reads the edge's events over SSH: the cold start's residency answered the twenty requests,
the events arrive in the node's order, each once (a second read adds none)."""
import http.client
import json
import os
import signal
import threading
import time

from ksvtest import (ENGINE, check, finish, free_port, ksv_cli, load_json, lock_pid,
                     max_abs_diff, model_path, tmpdir)
from sshnode import SshNode, skip_unless_available

skip_unless_available()

work = tmpdir("ksv-cold-ssh-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), HOME=work, USER="tester",
           XDG_STATE_HOME=os.path.join(work, "state"), XDG_CONFIG_HOME=os.path.join(work, "cfg"),
           KSV_ENGINE=ENGINE)
env.pop("SSH_AUTH_SOCK", None)
env.pop("KSV_CONFIG", None)
ksv, ksv_json = ksv_cli(env, timeout=180)
box = SshNode(work)
engine_dir = os.path.join(work, "edge-engine")
engine_port = free_port()
BODY = json.dumps(load_json("requests", "fraud.json"))
WANT = load_json("expected", "fraud.json")["data"]


def admin(path):
    with open(os.path.join(engine_dir, "token")) as f:
        token = f.read().strip()
    c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=10)
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    body = r.read()
    c.close()
    return json.loads(body) if r.status == 200 else None


def edge_state():
    m = admin("/ksv/v1/models/fraud")
    return m["revisions"][0] if m else {}


try:
    check(box.start(), "sshd is up")
    rc, out, err = ksv("node", "add", "edge", box.address, "--trust-new",
                       *box.node_args(ENGINE, engine_dir, engine_port))
    check(rc == 0, "edge added over SSH (%s)" % err.strip())
    path = os.path.join(work, "fraud.yaml")
    with open(path, "w") as f:
        f.write("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: fraud
  annotations:
    autoscaling.knative.dev/window: 1s
spec:
  predictor:
    minReplicas: 0
    model:
      modelFormat: {name: xgboost}
      storageUri: %s/model.json
""" % model_path("fraud"))
    rc, out, err = ksv("apply", "-f", path, "--node", "edge")
    check(rc == 0, "applied over SSH (%s)" % (err.strip() or out.strip()))
    deadline = time.time() + 30
    while time.time() < deadline and edge_state().get("state") != "scaled-to-zero":
        time.sleep(0.1)
    check(edge_state().get("state") == "scaled-to-zero", "fraud scaled to zero on the edge")

    box.stop()  # the link is cut: the edge is on its own
    rc, out, err = ksv("--timeout", "5", "node", "status", "edge")
    check(rc == 1, "with the link cut, node status says the edge is unreachable")

    results = [None] * 20
    gate = threading.Barrier(20)

    def client(i):
        c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=60)
        c.connect()
        gate.wait()
        try:
            c.request("POST", "/v2/models/fraud/infer", body=BODY,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            results[i] = (r.status, json.loads(r.read()))
        except (OSError, http.client.HTTPException, ValueError) as e:
            results[i] = ("error", str(e))
        c.close()

    threads = [threading.Thread(daemon=True, target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    good = [r for r in results if r and r[0] == 200 and
            max_abs_diff(r[1]["outputs"][0]["data"], WANT) < 1e-5]
    check(len(good) == 20, "20/20 requests of the edge's clients answered 200 with XGBoost's "
          "prediction (%s)" % [r[0] if r else None for r in results])
    st = edge_state()
    check(st.get("cold_starts") == 1, "exactly one cold start on the edge (%s)" % st.get("cold_starts"))

    # Idle again for its window, it scales to zero again: the edge's events are then final.
    deadline = time.time() + 30
    while time.time() < deadline and edge_state().get("state") != "scaled-to-zero":
        time.sleep(0.1)
    check(edge_state().get("state") == "scaled-to-zero", "and scaled to zero again")

    check(box.start(), "the link returns")
    rc, out, err = ksv("cost", "--since", "1h", "-o", "json")
    rows = json.loads(out) if rc == 0 else []
    row = [r for r in rows if r["model"] == "fraud"]
    check(rc == 0 and not err and row and row[0]["requests"] == 20 and
          row[0]["scaled_to_zero_hours"] > 0,
          "ksv cost over SSH: fraud answered 20 requests, spent time at zero (%s %s)" %
          (row, err.strip()))
    rc, hist = ksv_json("history", "default/fraud", "--limit", "100")
    events = [h for h in reversed(hist) if h["actor"] == "engine@edge"] if rc == 0 else []
    kinds = [h["action"] for h in events]
    seqs = [int(h["old"].split()[-1]) for h in events]
    check(kinds == ["model-load", "scale-to-zero", "cold-start", "scale-to-zero"] and
          seqs == sorted(seqs),
          "history: the edge's load, scale-to-zero, cold start, scale-to-zero, in order (%s)" %
          kinds)
    rc, rows2 = ksv_json("cost", "--since", "1h")
    rc, hist2 = ksv_json("history", "default/fraud", "--limit", "100")
    check(len([h for h in hist2 if h["actor"] == "engine@edge"]) == len(events),
          "a second read adds no event")
finally:
    pid = lock_pid(engine_dir)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    box.stop()
finish()
