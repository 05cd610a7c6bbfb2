"""ksv CLI end to end: two real local engines as two nodes and a real SQLite file.
Registers nodes, applies KServe manifests (plain, same again, canary), moves traffic,
promotes, rolls back (also under steady load from `ksv load`, which must see zero
errors), reads history and live figures, reports a failing node while the others
proceed, shows drift, survives kill -9 in the middle of an apply and of a rollback, and
deletes."""
import json
import os
import random
import signal
import subprocess
import time

from ksvtest import ksv_cli, DATA, ENGINE, KSV, SRCDIR, check, finish, free_port, lock_pid, tmpdir

work = tmpdir("ksv-cli-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=ENGINE, KSV_SAMPLE_SECONDS="1", USER="tester")
node_dirs = {"a": os.path.join(work, "node-a"), "b": os.path.join(work, "node-b")}


ksv, ksv_json = ksv_cli(env)


def engine_state(node, model):
    """The node's applied state for model, read straight from its engine's admin API."""
    d = node_dirs[node]
    with open(os.path.join(d, "address")) as f:
        addr = f.read().strip()
    with open(os.path.join(d, "token")) as f:
        token = f.read().strip()
    import http.client
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=10)
    c.request("GET", "/ksv/v1/models/" + model, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    return r.status, body, addr


def engine_pids():
    return [p for p in (lock_pid(d) for d in node_dirs.values()) if p]


def manifest(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


try:
    models = os.path.join(DATA, "models")
    plain = manifest(os.path.join(work, "churn.yaml"), """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: churn
  annotations:
    ksv.io/nodes: "a,b"
    ksv.io/rollback-window: "60"
spec:
  predictor:
    model:
      modelFormat:
        name: xgboost
      storageUri: %s/churn-v1/model.json
""" % models)
    canary = manifest(os.path.join(work, "churn-canary.yaml"), open(plain).read()
                      .replace("churn-v1", "churn-v2")
                      .replace("  predictor:\n", "  predictor:\n    canaryTrafficPercent: 20\n"))

    # Usage errors: exit 2.
    check(ksv("bogus")[0] == 2, "unknown command: exit 2")
    check(ksv("apply")[0] == 2, "apply without -f: exit 2")
    check(ksv("rollout", "set-traffic", "churn", "120")[0] == 2, "a percent over 100: exit 2")
    check(ksv("-o", "yaml", "get", "models")[0] == 2, "an unknown output format: exit 2")
    rc, out, _ = ksv("--help")
    check(rc == 0 and "rollout" in out and "Exit codes" in out, "--help lists the commands")
    rc, out, _ = ksv("rollout", "--help")
    check(rc == 0 and "set-traffic" in out, "`ksv rollout --help` shows its usage")
    rc, _, err = ksv("--timeout", "3", "node", "add", "edge", "ssh://user@127.0.0.1:%d" % free_port())
    check(rc == 1 and "edge" in err and "127.0.0.1" in err, "an ssh:// node that does not answer is refused (%s)" % err.strip()[:100])
    check(ksv("node", "add", "edge", "ftp://x")[0] == 2, "an unknown address scheme is a usage error")

    # Nodes: two local engines.
    for n in ("a", "b"):
        rc, out, err = ksv("node", "add", n, "local", "--engine-state-dir", node_dirs[n])
        check(rc == 0 and "added" in out, "node add %s local starts an engine (%s)" % (n, err.strip()))
    pid_a = engine_pids()[0]
    rc, out, err = ksv("node", "add", "a2", "local", "--engine-state-dir", node_dirs["a"])
    check(rc == 0 and engine_pids()[0] == pid_a, "node add on a running engine's state dir attaches to it")
    check(ksv("node", "rm", "a2")[0] == 0, "node rm")
    rc, nodes = ksv_json("node", "ls")
    check(rc == 0 and sorted(n["name"] for n in nodes) == ["a", "b"], "node ls -o json lists a and b")
    rc, _, err = ksv("node", "add", "a", "local")
    default_dir = os.path.join(env["XDG_STATE_HOME"], "ksv", "nodes", "a")
    check(rc == 1 and "already exists" in err, "adding a node twice fails (exit 1): %s" % err.strip())
    check(lock_pid(default_dir) is None, "the refused add started no engine at %s" % default_dir)

    # Manifests: broken ones are refused with file and line.
    bad = manifest(os.path.join(work, "bad.yaml"), "apiVersion: serving.kserve.io/v1beta1\nkind: Deployment\n"
                   "metadata:\n  name: x\n")
    rc, _, err = ksv("apply", "-f", bad)
    check(rc == 1 and "bad.yaml:2" in err, "a wrong kind is refused with file:line (%s)" % err.strip())
    check(ksv("apply", "-f", os.path.join(work, "missing.yaml"))[0] == 1, "a missing file: exit 1")

    # Apply: both nodes serve revision 00001.
    rc, out, err = ksv("apply", "-f", plain)
    check(rc == 0 and "1 changed" in out, "apply a plain manifest (%s)" % err.strip())
    for n in ("a", "b"):
        st, body, _ = engine_state(n, "churn")
        check(st == 200 and body["effective_traffic"] == {"churn-00001": 100} and body["rollback_window_s"] == 60,
              "node %s serves churn-00001 at 100%% with the annotated rollback window" % n)
    rc, out, _ = ksv("apply", "-f", plain)
    check(rc == 0 and "0 changed" in out, "the same spec applied twice changes nothing")
    rc, view = ksv_json("get", "revisions", "churn")
    check(len(view["revisions"]) == 1, "still one revision")

    # Canary.
    rc, out, err = ksv("apply", "-f", canary)
    check(rc == 0, "apply a changed spec with canaryTrafficPercent 20 (%s)" % err.strip())
    for n in ("a", "b"):
        st, body, _ = engine_state(n, "churn")
        check(body["effective_traffic"] == {"churn-00001": 80, "churn-00002": 20},
              "node %s: churn-00002 gets 20%%, churn-00001 keeps 80%%" % n)
    rc, out, _ = ksv("apply", "-f", canary)
    check(rc == 0 and "0 changed" in out, "re-applying the canary manifest is a no-op")
    rc, models_json = ksv_json("get", "models")
    check(rc == 0 and models_json[0]["traffic"] == {"churn-00001": 80, "churn-00002": 20},
          "get models -o json shows the split")
    rc, out, _ = ksv("describe", "churn")
    check(rc == 0 and "churn-00002" in out and "canary" in out and "storageUri" in out,
          "describe shows revisions, roles and the spec")

    # Rollout commands.
    rc, out, _ = ksv("rollout", "set-traffic", "churn", "50")
    check(rc == 0 and engine_state("a", "churn")[1]["effective_traffic"] == {"churn-00001": 50, "churn-00002": 50},
          "set-traffic 50 is in effect on the node")
    rc, out, _ = ksv("rollout", "promote", "churn")
    check(rc == 0 and engine_state("b", "churn")[1]["effective_traffic"] == {"churn-00002": 100},
          "promote: the canary takes 100%")
    rc, out, _ = ksv("rollout", "rollback", "churn")
    check(rc == 0 and engine_state("a", "churn")[1]["effective_traffic"] == {"churn-00001": 100},
          "rollback after a promote goes back to the revision rolled out before")
    rc, out, _ = ksv("rollout", "rollback", "churn", "--to", "churn-00002")
    check(rc == 0 and engine_state("a", "churn")[1]["effective_traffic"] == {"churn-00002": 100},
          "rollback --to names the target")
    rc, _, err = ksv("rollout", "promote", "churn")
    check(rc == 1 and "no canary" in err, "promote without a canary fails with a reason")
    check(ksv("rollout", "status", "nope")[0] == 1, "an unknown model: exit 1")

    # Rollback under steady load: zero failed requests.
    ksv("apply", "-f", manifest(os.path.join(work, "churn-c3.yaml"), open(canary).read()
                                .replace("canaryTrafficPercent: 20", "canaryTrafficPercent: 30")
                                .replace("churn-v2", "churn-v1")))
    load = subprocess.Popen([KSV, "load", "churn", "--rps", "150", "--duration", "4", "-o", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)
    rc1 = ksv("rollout", "set-traffic", "churn", "60")[0]
    time.sleep(0.5)
    rc2 = ksv("rollout", "rollback", "churn")[0]
    out, err = load.communicate(timeout=30)
    try:
        report = json.loads(out)
    except ValueError:
        report = {}
    check(rc1 == 0 and rc2 == 0, "traffic moves and a rollback while `ksv load` runs")
    check(load.returncode == 0 and report.get("errors") == 0 and report.get("completed", 0) > 400,
          "`ksv load` saw zero failed requests during the rollback (%s)" %
          {k: report.get(k) for k in ("completed", "errors", "achieved_rps")})

    # Live figures: QPS, P99 and ERR% under load.
    load = subprocess.Popen([KSV, "load", "churn", "--rps", "100", "--duration", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(1.5)
    rc, models_json = ksv_json("get", "models")
    load.wait(30)
    m = models_json[0] if rc == 0 and models_json else {}
    check(m.get("qps") is not None and 60 <= m["qps"] <= 140,
          "get models: QPS near the 100 rps load (%s)" % m.get("qps"))
    check(m.get("p99_ms") is not None and m["p99_ms"] > 0 and m.get("error_pct") == 0,
          "get models: P99 and ERR%% measured (%s ms, %s%%)" % (m.get("p99_ms"), m.get("error_pct")))
    rc, out, _ = ksv("get", "models")
    check(rc == 0 and "QPS" in out and "P99" in out and "ERR%" in out, "get models table has QPS, P99, ERR%")
    import sqlite3
    db = sqlite3.connect(env["KSV_DB"])
    stored = db.execute("select count(*), coalesce(sum(requests_2xx), 0) from metric_samples "
                        "where model = 'churn'").fetchone()
    db.close()
    check(stored[0] > 0 and stored[1] > 0, "scrapes are stored as samples in SQLite (%s rows, %s 2xx)" % stored)

    # Drift: change a node behind ksv's back, see it, reconcile it away.
    st, body, addr = engine_state("a", "churn")
    with open(os.path.join(node_dirs["a"], "token")) as f:
        token = f.read().strip()
    import http.client
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=10)
    live = body["traffic"]
    other = {k: (100 if v == 0 else 0) for k, v in live.items()}
    if sum(other.values()) != 100:
        other = {k: 0 for k in live}
        other[sorted(live)[0]] = 100
    c.request("PUT", "/ksv/v1/models/churn/traffic", body=json.dumps({"traffic": other}),
              headers={"Authorization": "Bearer " + token})
    c.getresponse().read()
    time.sleep(0.5)
    rc, status = ksv_json("node", "status", "a")
    check(status and status[0]["reachable"] and len(status[0]["drift"]) > 0,
          "node status shows drift after a change behind ksv's back (%s)" % (status[0]["drift"] if status else ""))
    check(ksv("reconcile", "churn")[0] == 0, "reconcile")
    rc, status = ksv_json("node", "status", "a")
    check(status and status[0]["drift"] == [], "no drift after reconcile")

    # A failing node is reported while the others proceed.
    dead_token = os.path.join(work, "dead.token")
    with open(dead_token, "w") as f:
        f.write("x\n")
    rc, _, err = ksv("node", "add", "dead", "http://127.0.0.1:%d" % free_port(), "--token-file", dead_token)
    check(rc == 1 and "unreachable" in err, "node add refuses a node that does not answer")
    # Register it anyway through a live engine, then stop that engine: kill b's engine and
    # point the model at a and a node whose engine is gone.
    fraud = manifest(os.path.join(work, "fraud.yaml"), open(plain).read().replace("churn-v1", "fraud")
                     .replace("name: churn", "name: fraud").replace('"a,b"', '"a,b"'))
    with open(os.path.join(node_dirs["b"], "address")) as f:
        b_addr = f.read().strip()
    rc, out, err = ksv("node", "add", "b-http", "http://" + b_addr, "--token-file", os.path.join(node_dirs["b"], "token"))
    check(rc == 0, "node add http://HOST:PORT with --token-file (%s)" % err.strip())
    os.kill(engine_pids()[1], signal.SIGKILL)
    time.sleep(0.3)
    rc, out, err = ksv("--timeout", "10", "apply", "-f", fraud.replace("fraud.yaml", "fraud.yaml"),
                       "--node", "a", "--node", "b-http")
    check(rc == 1 and "b-http" in err, "apply exits 1 naming the node that failed (%s)" % err.strip()[:120])
    check(engine_state("a", "fraud")[1].get("effective_traffic") == {"fraud-00001": 100},
          "the other node got the change")
    rc, hist = ksv_json("history", "fraud")
    rec = [h for h in hist if h["action"] == "reconcile"]
    check(rec and "failed" in rec[0]["result"] and rec[0]["nodes"]["a"].startswith("ok") and
          rec[0]["nodes"]["b-http"].startswith("failed"), "history records each node's result")
    rc, status = ksv_json("node", "status", "b-http")
    check(rc == 1 and status and status[0]["reachable"] is False, "node status shows the dead node unreachable (exit 1)")

    # History.
    rc, hist = ksv_json("history", "churn", "--limit", "100")
    actions = [h["action"] for h in hist]
    check(rc == 0 and {"apply", "set-traffic", "promote", "rollback", "reconcile"} <= set(actions),
          "history has apply, set-traffic, promote, rollback and reconcile rows")
    # Rows ksv wrote name $USER; rows imported from the engines' event logs (a revision
    # loaded or unloaded: what `ksv cost` counts) name engine@NODE.
    mine = [h for h in hist if not h["actor"].startswith("engine@")]
    engines = [h for h in hist if h["actor"].startswith("engine@")]
    check(mine and all(h["actor"] == "tester" for h in mine), "history records the actor ($USER)")
    check(all(h["action"] in ("model-load", "model-unload", "cold-start", "scale-to-zero")
              for h in engines), "engine rows are residency events: %s" %
          sorted({h["action"] for h in engines}))
    check(hist == sorted(hist, key=lambda h: -h["id"]), "history is newest first")
    rc, out, _ = ksv("history", "--limit", "3")
    check(rc == 0 and len(out.strip().splitlines()) == 4, "history --limit 3 prints three rows")

    # Crash safety: kill -9 ksv in the middle of an apply and of a rollback.
    rng = random.Random(3)
    for what in ("apply", "rollback"):
        for attempt in range(3):
            if what == "apply":
                path = manifest(os.path.join(work, "crash-%d.yaml" % attempt), open(plain).read()
                                .replace("name: churn", "name: crash%d" % attempt).replace('"a,b"', '"a"'))
                args = ["apply", "-f", path]
            else:
                args = ["rollout", "rollback", "churn"]
            p = subprocess.Popen([KSV] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            time.sleep(rng.uniform(0.005, 0.06))
            p.kill()
            p.wait()
            rc, out, err = ksv("history", "--limit", "5")
            check(rc == 0, "%s killed #%d: the database still reads" % (what, attempt))
            if what == "apply":
                rc, out, err = ksv(*args)
                check(rc == 0, "apply run again after kill -9 finishes the work (%s)" % err.strip()[:100])
                name = "crash%d" % attempt
                st, body, _ = engine_state("a", name)
                check(st == 200 and body["effective_traffic"] == {name + "-00001": 100},
                      "the node serves %s after the re-run" % name)
                rc, view = ksv_json("get", "revisions", name)
                check(rc == 0 and len(view["revisions"]) == 1, "one revision, not two, after the re-run")
    rc, out, err = ksv("reconcile", "churn")
    check(rc == 0, "after killed rollbacks, reconcile brings the nodes to the desired state")
    rc, view = ksv_json("get", "revisions", "churn")
    want = {r["name"]: r["traffic"] for r in view["revisions"] if r["traffic"]}
    check(engine_state("a", "churn")[1]["effective_traffic"] == want, "node a matches the store after kill -9 rollbacks")
    integrity = subprocess.run(["python3", "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])",
                                env["KSV_DB"]], capture_output=True, text=True)
    check(integrity.stdout.strip() == "ok", "SQLite integrity_check ok")

    # Delete.
    rc, out, err = ksv("delete", "churn")
    check(rc == 0 and engine_state("a", "churn")[0] == 404, "delete removes the model from its nodes")
    rc, hist = ksv_json("history", "churn")
    check(hist and hist[0]["action"] in ("reconcile", "delete"), "history keeps the deleted model's rows")
    check(ksv("describe", "churn")[0] == 1, "describe a deleted model: exit 1")
finally:
    for pid in engine_pids():
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
finish()
