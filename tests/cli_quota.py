"""Namespace quotas end to end: Kubernetes ResourceQuota documents in `ksv apply`, a real
SQLite database and a real local engine (docs/OPERATIONS.md, "Namespace quotas").

team-a gets count/inferenceservices.serving.kserve.io: 3 and requests.memory: 1Gi. Three
models fit; a fourth is refused with kubectl's wording and exit 1, and nothing is stored
(models, revisions and history unchanged); a re-applied model that would take the namespace
past its memory is refused the same way; one that stays within it is applied. GPUs: a quota
of one nvidia.com/gpu admits one model with a GPU limit and refuses a second. Another
namespace is not limited. `ksv get quota` shows used and hard, as a table and -o json.
Broken quota documents are refused with the file, line and reason.
"""
import functools
import json
import os
import sqlite3

from ksvtest import (ksv_cli, DATA, ENGINE, check, finish, isvc_yaml, quota_yaml, stop_engine,
                     tmpdir, write_file)

work = tmpdir("ksv-quota-")
db = os.path.join(work, "ksv.db")
env = dict(os.environ, KSV_DB=db, XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE,
           USER="tester")
node_dir = os.path.join(work, "node")
MODEL = os.path.join(DATA, "models", "churn-v1", "model.json")
write = functools.partial(write_file, work)


ksv, _ = ksv_cli(env, timeout=180)


def isvc(name, ns, memory=None, gpu=None):
    return isvc_yaml(name, MODEL, namespace=ns, requests={"memory": memory} if memory else None,
                     limits={"nvidia.com/gpu": gpu} if gpu else None)


def counts():
    c = sqlite3.connect(db)
    try:
        return tuple(c.execute("select count(*) from %s" % t).fetchone()[0]
                     for t in ("models", "revisions", "history"))
    finally:
        c.close()


QUOTA = quota_yaml("team-a-quota", "team-a", {
    "count/inferenceservices.serving.kserve.io": '"3"', "requests.memory": "1Gi",
    "requests.cpu": '"4"'})
try:
    rc, out, err = ksv("node", "add", "n1", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add n1 local (%s)" % err.strip())

    # Broken quota documents: refused with file:line and why, nothing stored.
    bad = write("bad.yaml", QUOTA.replace('"3"', "three"))
    rc, out, err = ksv("apply", "-f", bad)
    check(rc == 1 and "bad.yaml:8:" in err and "expected a whole number" in err,
          "a count that is not a number: exit 1 with FILE:LINE (%s)" % err.strip())
    bad = write("bad2.yaml", QUOTA.replace("apiVersion: v1", "apiVersion: v2"))
    rc, out, err = ksv("apply", "-f", bad)
    check(rc == 1 and "apiVersion v1" in err, "a ResourceQuota of another apiVersion (%s)" % err.strip())
    bad = write("bad3.yaml", QUOTA.replace("1Gi", "lots"))
    rc, out, err = ksv("apply", "-f", bad)
    check(rc == 1 and "not a memory quantity" in err, "requests.memory: lots (%s)" % err.strip())

    rc, out, err = ksv("apply", "-f", write("quota.yaml", QUOTA))
    check(rc == 0, "apply a ResourceQuota alone: exit 0 (%s)" % err.strip())
    check("not acted on: spec.hard[requests.cpu]" in err, "requests.cpu is listed as not acted on (%s)" % err.strip())
    rc, out, err = ksv("get", "quota", "-o", "json")
    q = json.loads(out) if rc == 0 else []
    check(rc == 0 and len(q) == 1 and q[0]["namespace"] == "team-a" and q[0]["name"] == "team-a-quota"
          and q[0]["hard"] == {"count/inferenceservices.serving.kserve.io": "3", "requests.memory": "1Gi"}
          and q[0]["used"] == {"count/inferenceservices.serving.kserve.io": "0", "requests.memory": "0"},
          "get quota -o json: hard and used (%s)" % out.strip())

    three = write("three.yaml", "---\n".join(isvc("m%d" % i, "team-a", "256Mi") for i in (1, 2, 3)))
    rc, out, err = ksv("apply", "-f", three)
    check(rc == 0, "three models of 256Mi in team-a fit (%s)" % (out + err).strip()[:200])
    before = counts()
    rc, out, err = ksv("apply", "-f", write("fourth.yaml", isvc("m4", "team-a", "64Mi")))
    want = ("exceeded quota: team-a-quota, requested: count/inferenceservices.serving.kserve.io=1, "
            "used: count/inferenceservices.serving.kserve.io=3, "
            "limited: count/inferenceservices.serving.kserve.io=3")
    check(rc == 1 and want in err, "a fourth model: exit 1, kubectl's wording (%s)" % err.strip())
    check(counts() == before, "nothing stored: models, revisions, history unchanged %s" % (counts(),))

    # Memory: m1 re-applied at 600Mi would make 512Mi + 600Mi > 1Gi.
    rc, out, err = ksv("apply", "-f", write("m1-big.yaml", isvc("m1", "team-a", "600Mi")))
    want = ("exceeded quota: team-a-quota, requested: requests.memory=600Mi, "
            "used: requests.memory=512Mi, limited: requests.memory=1Gi")
    check(rc == 1 and want in err, "m1 over requests.memory: exit 1 (%s)" % err.strip())
    check(counts() == before, "nothing stored")
    rc, out, err = ksv("apply", "-f", write("m1-ok.yaml", isvc("m1", "team-a", "512Mi")))
    check(rc == 0, "m1 at 512Mi stays within 1Gi: applied (%s)" % err.strip()[:200])
    rc, out, err = ksv("get", "quota", "-n", "team-a")
    check(rc == 0 and "team-a-quota" in out and
          "count/inferenceservices.serving.kserve.io: 3/3, requests.memory: 1Gi/1Gi" in out,
          "get quota -n team-a shows used/hard:\n%s" % out)

    # Another namespace is not limited by team-a's quota.
    rc, out, err = ksv("apply", "-f", write("other.yaml", isvc("m4", "team-b", "2Gi")))
    check(rc == 0, "team-b has no quota: its model applies (%s)" % err.strip()[:200])

    # GPUs, with the quota in the same file as the models: one fits, a second does not.
    gq = quota_yaml("gpus", "team-g", {"requests.nvidia.com/gpu": 1}) + "---\n"
    rc, out, err = ksv("apply", "-f", write("g1.yaml", gq + isvc("g1", "team-g", gpu=1)))
    check(rc == 0, "a quota of 1 GPU and a model with nvidia.com/gpu: 1 in one file (%s)" % err.strip()[:200])
    before = counts()
    rc, out, err = ksv("apply", "-f", write("g2.yaml", isvc("g2", "team-g", gpu=1)))
    want = ("exceeded quota: gpus, requested: requests.nvidia.com/gpu=1, "
            "used: requests.nvidia.com/gpu=1, limited: requests.nvidia.com/gpu=1")
    check(rc == 1 and want in err, "a second GPU model is refused (%s)" % err.strip())
    check(counts() == before, "nothing stored")
    rc, out, err = ksv("get", "quota", "-o", "json")
    names = [(x["namespace"], x["name"]) for x in json.loads(out)] if rc == 0 else []
    check(names == [("team-a", "team-a-quota"), ("team-g", "gpus")], "get quota lists both: %s" % names)
finally:
    stop_engine(node_dir)
finish()
