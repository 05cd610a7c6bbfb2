"""`--reason TEXT` (issue 11, "history says who and why"): every changing command records it
in SQLite history with the change, `ksv history` shows it (table and JSON), commands that
change nothing refuse it, and a reason with control characters or over 500 bytes is a usage
error before anything is opened. One real local engine as the node, a real SQLite file."""
import json
import os
import sqlite3

from ksvtest import ksv_cli, DATA, ENGINE, check, finish, stop_engine, tmpdir

work = tmpdir("ksv-reason-")
db = os.path.join(work, "ksv.db")
env = dict(os.environ, KSV_DB=db, XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE,
           USER="tester")
ksv, ksv_json = ksv_cli(env)
node_dir = os.path.join(work, "node-a")
iris = os.path.join(DATA, "models", "iris", "model.json")


def manifest(name, canary=None):
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as f:
        f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                "metadata:\n  name: iris\nspec:\n  predictor:\n%s    model:\n"
                "      modelFormat:\n        name: xgboost\n      storageUri: file://%s\n"
                "      runtimeVersion: \"%s\"\n"
                % ("    canaryTrafficPercent: %d\n" % canary if canary else "", iris, name))
    return path


def reasons():
    """(action, reason) of every history row, oldest first, read by `ksv history -o json`."""
    rc, out, _ = ksv("history", "--limit", "100", "-o", "json")
    rows = json.loads(out) if rc == 0 else []
    rows = rows.get("items", rows) if isinstance(rows, dict) else rows
    return [(r.get("action"), r.get("reason")) for r in reversed(rows)]


try:
    steps = [
        ("node add", ["node", "add", "a", "local", "--engine-state-dir", node_dir],
         "first edge box"),
        ("apply", ["apply", "-f", manifest("v1")], "ticket OPS-1: iris v1"),
        ("apply", ["apply", "-f", manifest("v2", canary=20), "--reason", "ticket OPS-2: v2 canary"],
         None),
        ("set-traffic", ["rollout", "set-traffic", "iris", "50"], "more canary: p99 flat"),
        ("promote", ["rollout", "promote", "iris"], "v2 is good"),
        ("rollback", ["rollout", "rollback", "iris"], "customer report, ünïcödé kept"),
        ("reconcile", ["reconcile", "iris"], "after the node restart"),
        ("delete", ["delete", "iris"], "iris retired"),
        ("node rm", ["node", "rm", "a"], "box returned"),
    ]
    for action, args, reason in steps:
        # --reason is global: before the command (as here) or after it (the apply above).
        argv = (["--reason", reason] if reason else []) + args
        rc, out, err = ksv(*argv)
        check(rc == 0, "%s with a reason (%s)" % (action, err.strip()[-200:]))
    got = reasons()
    want_reason = {"node add": "first edge box", "set-traffic": "more canary: p99 flat",
                   "promote": "v2 is good", "rollback": "customer report, ünïcödé kept",
                   "delete": "iris retired", "node rm": "box returned"}
    for action, reason in want_reason.items():
        check(any(a == action and r == reason for a, r in got),
              "history: %s carries its reason %r" % (action, reason))
    applies = [r for a, r in got if a == "apply"]
    check("ticket OPS-1: iris v1" in applies and "ticket OPS-2: v2 canary" in applies,
          "history: both applies carry their reasons (%s)" % applies)
    check(any(a == "reconcile" and r == "after the node restart" for a, r in got),
          "history: reconcile carries its reason")
    # Stored in SQLite itself, in the history table's reason column.
    con = sqlite3.connect(db)
    stored = [r[0] for r in con.execute("SELECT reason FROM history WHERE reason IS NOT NULL")]
    con.close()
    check("iris retired" in stored and "ticket OPS-2: v2 canary" in stored,
          "the reasons are in SQLite's history.reason (%d rows)" % len(stored))
    rc, out, _ = ksv("history", "--limit", "3")
    check(rc == 0 and "REASON" in out.splitlines()[0] and "box returned" in out,
          "`ksv history` shows a REASON column:\n%s" % out)

    # Refused before anything is opened: a command that changes nothing, control characters,
    # more than 500 bytes.
    before = len(got)
    rc, _, err = ksv("get", "models", "--reason", "why")
    check(rc == 2 and "change something" in err, "get models --reason: usage error (%s)" % err.strip())
    rc, _, err = ksv("--reason", "a\x1b]0;pwned\x07b", "node", "add", "b", "local")
    check(rc == 2 and "control characters" in err and "\x1b" not in err,
          "a reason with escape sequences: usage error (%s)" % err.strip())
    rc, _, err = ksv("--reason", "x" * 501, "node", "add", "b", "local")
    check(rc == 2 and "500" in err, "a 501-byte reason: usage error")
    check(len(reasons()) == before, "refused commands wrote no history")
    check(not os.path.exists(os.path.join(work, "state", "ksv", "nodes", "b")),
          "refused node add created nothing")
finally:
    stop_engine(node_dir)
finish()
