"""A release gate on an edge node reached over SSH (a real sshd on loopback, tests/sshnode.py):
the gated rollout starts through the link, the link is cut mid-rollout, the engine on the
edge finishes alone (traffic reaches it directly, as clients would), and when the link
returns `ksv history` shows the node's gate events in the node's order, each once, and a
second read adds none. The desired split follows the promotion the edge made alone."""
import collections
import http.client
import json
import os
import time

from ksvtest import (DATA, ENGINE, Traffic, canary_yaml, check, finish, free_port, isvc_yaml, ksv_cli,
                     load_json, stop_engine, tmpdir, write_file)
from sshnode import SshNode, skip_unless_available

skip_unless_available()

work = tmpdir("ksv-gate-ssh-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), HOME=work, USER="tester",
           XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE)
env.pop("SSH_AUTH_SOCK", None)
box = SshNode(work)
engine_dir = os.path.join(work, "edge-engine")
engine_port = free_port()
BODY = json.dumps(load_json("requests", "churn-v1.json"))
MODELS = os.path.join(DATA, "models")
ksv, ksv_json = ksv_cli(env)


def engine_rollout():
    with open(os.path.join(engine_dir, "token")) as f:
        token = f.read().strip()
    c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=10)
    c.request("GET", "/ksv/v1/models/churn", headers={"Authorization": "Bearer " + token})
    body = json.loads(c.getresponse().read())
    c.close()
    return body.get("rollout")


def manifest(name, model_dir, canary=False):
    text = isvc_yaml("churn", "%s/%s/model.json" % (MODELS, model_dir))
    if canary:
        text += canary_yaml("churn", [10, 20, 30, 40, 50, 60, 70])
    return write_file(work, name, text)


try:
    check(box.start(), "sshd is up")
    rc, out, err = ksv("node", "add", "edge", box.address, "--trust-new",
                       *box.node_args(ENGINE, engine_dir, engine_port))
    check(rc == 0, "edge added over SSH (%s)" % err.strip()[-200:])
    rc, out, err = ksv("apply", "-f", manifest("v1.yaml", "churn-v1"))
    check(rc == 0, "v1 applied over SSH (%s)" % err.strip()[-200:])
    # Clients of the edge: they call its engine directly, never through the console.
    load = Traffic("127.0.0.1", engine_port, "churn", BODY, rps=100, clients=1)
    rc, out, err = ksv("apply", "-f", manifest("v2.yaml", "churn-v2", canary=True))
    check(rc == 0, "the gated rollout starts over SSH (%s)" % err.strip()[-200:])
    deadline = time.time() + 30
    ro = None
    while time.time() < deadline:
        ro = engine_rollout()
        if ro and ro["step"] >= 1:
            break
        time.sleep(0.1)
    check(ro and ro["phase"] in ("Progressing", "Waiting") and ro["step"] >= 1, "the edge is mid-rollout")

    box.stop()  # the link is cut; the edge goes on alone
    rc, out, err = ksv("--timeout", "5", "rollout", "status", "churn")
    check("unreachable" in out or rc != 0, "with the link cut, status says the edge is unreachable")
    deadline = time.time() + 60
    while time.time() < deadline:
        ro = engine_rollout()
        if ro and ro["phase"] in ("Succeeded", "Failed"):
            break
        time.sleep(0.2)
    counts = collections.Counter()
    for (_, status), n in load.stop().items():
        counts[status] += n
    check(ro and ro["phase"] == "Succeeded", "the edge finished the rollout alone (%s)" % (ro and ro["phase"]))
    check(counts[200] > 0 and set(counts) == {200}, "its clients were served throughout (%s)" % dict(counts))

    check(box.start(), "the link returns")
    rc, hist = ksv_json("history", "churn", "--limit", "500")
    rows = [h for h in reversed(hist) if h["actor"] == "gate@edge"] if rc == 0 else []
    seqs = [int(h["old"].split()[-1]) for h in rows]
    kinds = [h["action"] for h in rows]
    check(rows and seqs == sorted(seqs) and len(set(seqs)) == len(seqs),
          "history has the edge's events in the node's order, each once (%d rows)" % len(rows))
    check(kinds[:1] == ["gate-start"] and kinds[-1:] == ["gate-succeeded"] and
          kinds.count("gate-step") == 7, "from gate-start through 7 steps to gate-succeeded: %s" % kinds)
    rc, hist2 = ksv_json("history", "churn", "--limit", "500")
    check(len([h for h in hist2 if h["actor"] == "gate@edge"]) == len(rows), "a second read adds none")
    rc, st = ksv_json("rollout", "status", "churn")
    split = {r["name"]: r["traffic"] for r in st.get("revisions", [])}
    check(split.get("churn-00002") == 100, "the desired split follows what the edge decided: %s" % split)
finally:
    stop_engine(engine_dir)
    box.stop()
finish()
