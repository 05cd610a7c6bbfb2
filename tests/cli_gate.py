"""Release gates through ksv: Flagger Canary documents applied with `ksv apply`, the engine's
gate promoting or rolling back, `ksv rollout status|pause|resume|abort|retry|promote`,
`ksv apply --wait` (exit 0 Succeeded, 1 Failed) and the node's events entering `ksv history`
once each (actor gate@NODE). One real local engine as node `edge`, a real SQLite file, real
models from data/ (churn-v2: a healthy retrain; fraud: another feature count, every answer
400). Bad Canary documents are refused with file, line and field, and nothing is applied."""
import functools
import http.client
import json
import os
import time

from ksvtest import (DATA, ENGINE, Traffic, canary_yaml, check, finish, isvc_yaml, ksv_cli, load_json,
                     stop_engine, tmpdir, write_file)

work = tmpdir("ksv-gate-cli-")
node_dir = os.path.join(work, "node-edge")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=ENGINE, USER="tester")
MODELS = os.path.join(DATA, "models")
BODY = json.dumps(load_json("requests", "churn-v1.json"))
ksv, ksv_json = ksv_cli(env)
write = functools.partial(write_file, work)


def isvc(model_dir, canary_pct=None):
    return isvc_yaml("churn", "%s/%s/model.json" % (MODELS, model_dir), canary_pct)


CANARY = canary_yaml("churn", [25, 50], threshold=2, min_requests=10, name="churn-gate", deadline=60,
                     analysis=["webhooks: []"],
                     metrics=["{name: request-duration, thresholdRange: {max: 500}, interval: 2s, "
                              "minRequests: 10}"])


def revisions():
    rc, view = ksv_json("get", "revisions", "churn")
    return view.get("revisions") if rc == 0 else None


def split():
    """The desired split ksv keeps (revision: percent), from rollout status -o json."""
    rc, st = ksv_json("rollout", "status", "churn")
    return {r["name"]: r["traffic"] for r in st.get("revisions", [])} if rc == 0 else None


try:
    rc, out, err = ksv("node", "add", "edge", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add edge (%s)" % err.strip())
    with open(os.path.join(node_dir, "address")) as f:
        host, port = f.read().strip().rsplit(":", 1)
    port = int(port)
    rc, out, err = ksv("apply", "-f", write("v1.yaml", isvc("churn-v1")))
    check(rc == 0, "v1 applied (%s)" % err.strip())

    # --- bad Canary documents: refused with file, line and field; nothing applied -------------
    bad = [
        ("request-duration, thresholdRange", "request-latency, thresholdRange", "unknown metric"),
        ("stepWeights: [25, 50]", "stepWeight: 0", "spec.analysis.stepWeight"),
        ("stepWeights: [25, 50]", "stepWeight: 101", "spec.analysis.stepWeight"),
        ("interval: 1s\n", "interval: 500ms\n", "spec.analysis.interval"),
        ("{min: 99}, minRequests: 10", "{}, minRequests: 10", "thresholdRange"),
    ]
    for i, (old, new, word) in enumerate(bad):
        path = write("bad%d.yaml" % i, isvc("churn-v2") + CANARY.replace(old, new, 1))
        rc, out, err = ksv("apply", "-f", path)
        check(rc != 0 and word in err and "bad%d.yaml:" % i in err,
              "bad Canary refused naming %s with file and line: %s" % (word, err.strip()[:160]))
    nowhere = write("nowhere.yaml", CANARY.replace("name: churn}", "name: nothing}"))
    rc, out, err = ksv("apply", "-f", nowhere)
    check(rc != 0 and "spec.targetRef.name" in err and "nowhere.yaml:" in err,
          "a Canary whose targetRef names nothing is refused: %s" % err.strip()[:160])
    # The same inside kubectl's `kind: List`: the item's line and field, nothing applied.
    def as_list(*docs):
        items = []
        for d in docs:
            lines = [l for l in d.splitlines() if l and l != "---"]
            items.append("\n".join(("- " if i == 0 else "  ") + l for i, l in enumerate(lines)))
        return "apiVersion: v1\nkind: List\nitems:\n" + "\n".join(items) + "\n"
    bad_text = as_list(isvc("churn-v2"), CANARY.replace("stepWeights: [25, 50]", "stepWeight: 0"))
    bad_line = next(i + 1 for i, l in enumerate(bad_text.splitlines()) if "stepWeight: 0" in l)
    bad_list = write("bad-list.yaml", bad_text)
    rc, out, err = ksv("apply", "-f", bad_list)
    check(rc != 0 and "bad-list.yaml:%d:" % bad_line in err and "spec.analysis.stepWeight" in err,
          "a bad Canary inside a List is refused with its line and field: %s" % err.strip()[:200])
    check(len(revisions() or []) == 1, "nothing was applied by the refused files")

    # --- a healthy canary, gated: apply returns once it started; --wait until Succeeded -------
    load = Traffic(host, port, "churn", BODY, rps=150)
    good = write("v2.yaml", as_list(isvc("churn-v2", canary_pct=10), CANARY))
    t0 = time.time()
    rc, out, err = ksv("apply", "-f", good, "--wait")
    took = time.time() - t0
    check("canaryTrafficPercent ignored" in err, "canaryTrafficPercent is said to be ignored: %s" % err.strip()[:300])
    check(rc == 0 and "Succeeded" in out, "apply --wait exits 0 on Succeeded in %.1f s (%s %s)" %
          (took, out.strip()[-120:], err.strip()[-200:]))
    check("not acted on: spec.analysis.webhooks" in err, "Flagger fields not acted on are listed once")
    rc, st = ksv_json("rollout", "status", "churn")
    ro = st.get("gate", {}).get("nodes", [{}])[0].get("rollout") if rc == 0 else None
    check(ro and ro["phase"] == "Succeeded" and ro["actual_weight"] == 100 and ro["canary"] == "churn-00002",
          "rollout status -o json shows the node's gate Succeeded at 100%% (%s)" % (ro and ro["phase"]))
    rc, out, err = ksv("rollout", "status", "churn")
    check(rc == 0 and "Succeeded" in out and "request-success-rate" in out and "node edge" in out,
          "rollout status shows phase and the check table:\n" + out)
    time.sleep(0.5)
    counts = load.stop()
    check(sum(n for (r, s), n in counts.items() if s != 200) == 0,
          "no failed request during the gated rollout (%s)" % dict(counts))
    check(counts[("churn-00002", 200)] > 0 and counts[("churn-00001", 200)] > 0,
          "both revisions served during the steps")
    rc, hist = ksv_json("history", "churn", "--limit", "200")
    gate_rows = [h for h in hist if h["actor"] == "gate@edge"]
    actions = [h["action"] for h in reversed(gate_rows)]
    check(actions[:1] == ["gate-start"] and actions[-2:] == ["gate-promote", "gate-succeeded"] and
          actions.count("gate-step") == 2, "history has the node's gate events in order: %s" % actions)
    rc, hist2 = ksv_json("history", "churn", "--limit", "200")
    check(len([h for h in hist2 if h["actor"] == "gate@edge"]) == len(gate_rows),
          "reading history again adds no event twice")
    # The console followed the gate: a reconcile keeps churn-00002 at 100%.
    rc, out, err = ksv("reconcile", "churn")
    sp = split()
    check(rc == 0 and sp and sp.get("churn-00002") == 100,
          "the desired split follows the promotion, so reconcile keeps it (%s)" % sp)

    # --- a canary that answers 400 to everything: apply --wait exits 1, stable unharmed -------
    load = Traffic(host, port, "churn", BODY, rps=150)
    bad_model = write("v3.yaml", isvc("fraud") + CANARY)
    rc, out, err = ksv("apply", "-f", bad_model, "--wait")
    counts = load.stop()
    check(rc == 1 and "Failed" in err and "request-success-rate" in err,
          "apply --wait exits 1 with the reason: %s" % err.strip()[-200:])
    check(sum(n for (r, s), n in counts.items() if r == "churn-00002" and s != 200) == 0,
          "the stable revision answered every request 200 (%s)" % dict(counts))
    sp = split()
    check(sp and sp.get("churn-00002") == 100 and sp.get("churn-00003") == 0,
          "the desired split is back on stable: %s" % sp)

    # --- operator actions: retry, pause, resume, abort, promote --------------------------------
    rc, out, err = ksv("rollout", "retry", "churn")
    check(rc == 0, "rollout retry (%s)" % err.strip())
    rc, out, err = ksv("rollout", "pause", "churn")
    check(rc == 0 and "Paused" in out, "rollout pause (%s %s)" % (out.strip(), err.strip()))
    rc, out, err = ksv("rollout", "pause", "churn")
    check(rc == 1, "pausing twice fails with exit 1 (%s)" % err.strip())
    rc, out, err = ksv("rollout", "resume", "churn")
    check(rc == 0, "rollout resume")
    rc, out, err = ksv("rollout", "abort", "churn")
    check(rc == 0 and "Failed" in out, "rollout abort (%s)" % out.strip())
    rc, out, err = ksv("rollout", "promote", "churn")
    check(rc == 0, "rollout promote overrides the gate (%s)" % err.strip())
    deadline = time.time() + 20
    while time.time() < deadline:
        rc, st = ksv_json("rollout", "status", "churn")
        ro = st.get("gate", {}).get("nodes", [{}])[0].get("rollout") or {}
        if ro.get("phase") == "Succeeded":
            break
        time.sleep(0.3)
    check(ro.get("phase") == "Succeeded" and ro.get("manual") is True, "manual promotion recorded (%s)" % ro.get("phase"))
    rc, hist = ksv_json("history", "churn", "--limit", "300")
    acts = [h["action"] for h in hist]
    for a in ("rollout pause", "rollout resume", "rollout abort", "gate-pause", "gate-resume", "gate-abort",
              "gate-retry"):
        check(a in acts, "history has %s" % a)
    rc, out, err = ksv("rollout", "frobnicate", "churn")
    check(rc == 2, "an unknown rollout subcommand is a usage error")

    # --- a gate that finishes while no ksv runs: the next apply starts from what it decided ---
    # churn-v1 again (a new revision), gated; only the engine is watched until it promotes,
    # so ksv's store still says the old revision is stable when the next apply comes.
    load = Traffic(host, port, "churn", BODY, rps=150)
    rc, out, err = ksv("apply", "-f", write("v5.yaml", isvc("churn-v1", canary_pct=5) + CANARY))
    check(rc == 0, "gated rollout of churn-v1 started (%s)" % err.strip()[-200:])
    with open(os.path.join(node_dir, "token")) as f:
        token = f.read().strip()

    def engine_model():
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/ksv/v1/models/churn", headers={"Authorization": "Bearer " + token})
        body = json.loads(c.getresponse().read())
        c.close()
        return body

    deadline = time.time() + 60
    while time.time() < deadline:
        ro = engine_model().get("rollout") or {}
        if ro.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(0.2)
    promoted = ro.get("canary")
    check(ro.get("phase") == "Succeeded", "the gate promoted %s with no ksv running (%s)" %
          (promoted, ro.get("phase")))
    rc, out, err = ksv("apply", "-f", write("v6.yaml", isvc("churn-v2", canary_pct=5) + CANARY))
    check(rc == 0, "the next gated apply (%s)" % err.strip()[-200:])
    body = engine_model()
    ro = body.get("rollout") or {}
    traffic = {r["name"]: r["traffic"] for r in body.get("revisions", [])}
    check(ro.get("stable") == promoted and traffic.get(promoted, 0) > 0,
          "it rolls out over the revision the gate promoted, %s, which keeps serving "
          "(stable %s, split %s)" % (promoted, ro.get("stable"), traffic))
    rc, hist = ksv_json("history", "churn", "--limit", "400")
    succeeded = [h for h in hist if h["actor"] == "gate@edge" and h["action"] == "gate-succeeded"]
    check(len(succeeded) == 3, "each promotion is in history once (%d gate-succeeded rows)" %
          len(succeeded))
    load.stop()
finally:
    stop_engine(node_dir)
finish()
