"""ksv-top end to end, driven inside tmux (send-keys, capture-pane) against a real engine:
the models screen shows each model with live figures; `+` then Enter changes the engine's
weights and adds a history row; `R` + confirm sends 100% to the stable revision; `e` with
EDITOR set to a script makes a new revision; a stopped (hung) engine shows as down/stale
within 5 s while keys keep working; a too-small terminal says so; `--once -o json` prints a
snapshot; `q` exits and leaves no process behind. Skips (77) only when tmux is missing."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from ksvtest import ksv_cli, DATA, ENGINE, KSV, TOP, check, finish, lock_pid, tmpdir
from tmuxterm import Tmux

if not shutil.which("tmux"):
    print("tmux not installed: skipping")
    sys.exit(77)

work = tmpdir("ksv-top-")
node_dir = os.path.join(work, "node-a")
db = os.path.join(work, "ksv.db")
env = dict(os.environ, KSV_DB=db, XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE,
           USER="tester", LC_ALL="C.UTF-8")
procs = []
term = Tmux("ksvtop")
tmux, screen, wait_for = term.run, term.screen, term.wait_for


ksv, _ = ksv_cli(env)


def engine_split(model):
    """{revision: effective traffic} straight from the engine's admin API."""
    import http.client
    with open(os.path.join(node_dir, "address")) as f:
        host, port = f.read().strip().rsplit(":", 1)
    with open(os.path.join(node_dir, "token")) as f:
        token = f.read().strip()
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request("GET", "/ksv/v1/models/" + model, headers={"Authorization": "Bearer " + token})
    body = json.loads(c.getresponse().read())
    c.close()
    return {r["name"]: r.get("traffic", 0) for r in body.get("revisions", [])}


def wait_split(model, want, timeout=20.0):
    deadline = time.time() + timeout
    got = {}
    while time.time() < deadline:
        got = {k: v for k, v in engine_split(model).items() if v}
        if got == want:
            return got
        time.sleep(0.2)
    return got


def history_actions(model):
    rc, out, _ = ksv("history", model, "-o", "json")
    return [h["action"] for h in json.loads(out)] if rc == 0 else []


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


engine_pid = None
try:
    rc, out, err = ksv("node", "add", "a", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add a local: " + out + err)
    engine_pid = lock_pid(node_dir)
    for m in ("churn.yaml", "churn-canary.yaml", "fraud.yaml"):
        rc, out, err = ksv("apply", "-f", os.path.join(DATA, "manifests", m))
        check(rc == 0, "apply " + m)
    load = subprocess.Popen([KSV, "load", "churn", "--rps", "40", "--duration", "120"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    procs.append(load)

    editor = os.path.join(work, "editor.sh")
    with open(editor, "w") as f:
        f.write("#!/bin/sh\nsed -i 's/churn-v2/churn-v1/' \"$1\"\n")
    os.chmod(editor, 0o755)

    cmd = "env KSV_DB=%s XDG_STATE_HOME=%s LC_ALL=C.UTF-8 USER=tester EDITOR=%s VISUAL= TERM=tmux-256color %s -d 1" % (
        db, env["XDG_STATE_HOME"], editor, TOP)
    tmux("new-session", "-d", "-s", "top", "-x", "100", "-y", "30", cmd)
    top_pid = int(tmux("display-message", "-p", "-t", "top", "#{pane_pid}").strip() or 0)

    # Live figures: a QPS number with one decimal on churn's row, '-' or a number on fraud's.
    # The wait covers the latency figures too: checked on the first screen that had a QPS,
    # they were still '-' once under load (the full suite on the shared 2-core machine).
    text = wait_for(lambda t: re.search(r"\+churn .* 2 80/20 +[0-9]+\.[0-9]", t) and "fraud" in t
                    and re.search(r"[0-9]+\.[0-9]ms", t))
    check(re.search(r"\+churn .* 2 80/20 +[0-9]+\.[0-9]", text) is not None,
          "models screen shows churn with its split and live QPS")
    check("+fraud" in text, "models screen shows fraud")
    check(re.search(r"[0-9]+\.[0-9]ms", text) is not None, "latency figures in ms")

    # Canary slider: + shows 75/25 as pending; Enter applies it through the control layer.
    tmux("send-keys", "-t", "top", "+")
    text = wait_for(lambda t: "75/25" in t and "pending" in t, 5)
    check("75/25" in text and "pending" in text, "+ shows the pending share next to the live split")
    check(engine_split("churn").get("churn-00002") == 20, "pending share not applied yet")
    tmux("send-keys", "-t", "top", "Enter")
    got = wait_split("churn", {"churn-00001": 75, "churn-00002": 25})
    check(got == {"churn-00001": 75, "churn-00002": 25}, "Enter applied 75/25 on the engine: %s" % got)
    check("set-traffic" in history_actions("churn"), "a set-traffic history row")

    # Esc cancels a pending share.
    tmux("send-keys", "-t", "top", "]")
    wait_for(lambda t: "76" in t, 5)
    tmux("send-keys", "-t", "top", "Escape")
    text = wait_for(lambda t: "cancelled" in t, 5)
    check("cancelled" in text, "Esc cancels the pending share")

    # Rollback: the dialog shows the change with focus on Cancel; Enter there changes nothing.
    tmux("send-keys", "-t", "top", "R")
    text = wait_for(lambda t: "Rollback" in t and "Cancel" in t, 5)
    check("churn-00001 100%" in text and "node(s): a" in text,
          "rollback dialog shows model, node and target split")
    tmux("send-keys", "-t", "top", "Enter")
    time.sleep(1)
    check(engine_split("churn").get("churn-00002") == 25, "Enter on the default (Cancel) changes nothing")
    tmux("send-keys", "-t", "top", "R")
    wait_for(lambda t: "Rollback" in t, 5)
    # The reason field: Tab twice reaches it (Cancel, the action, the reason); what is typed
    # there goes to history; Enter moves to the action button, a second Enter confirms.
    tmux("send-keys", "-t", "top", "Tab")
    tmux("send-keys", "-t", "top", "Tab")
    tmux("send-keys", "-t", "top", "-l", "p99 doubled (hq)")
    text = wait_for(lambda t: "reason:  p99 doubled (hq)_" in t, 5)
    check("reason:  p99 doubled (hq)_" in text, "the dialog's reason field shows what is typed")
    tmux("send-keys", "-t", "top", "Enter")
    tmux("send-keys", "-t", "top", "Enter")
    got = wait_split("churn", {"churn-00001": 100})
    check(got == {"churn-00001": 100}, "rollback + confirm sends 100%% to the stable revision: %s" % got)
    text = wait_for(lambda t: "rolled back" in t or "rollback" in t, 10)
    check("node a: ok" in text, "the per-node result shows in the status line")
    rc, out, _ = ksv("history", "churn", "-o", "json", "--limit", "5")
    rows = json.loads(out) if rc == 0 else []
    check(any(r.get("action") == "rollback" and r.get("reason") == "p99 doubled (hq)"
              for r in rows),
          "the rollback's history row carries the reason typed in the dialog")

    # Edit: the EDITOR script changes the storage URI: a new revision.
    tmux("send-keys", "-t", "top", "e")
    deadline = time.time() + 30
    revs = []
    while time.time() < deadline:
        rc, out, _ = ksv("get", "revisions", "churn", "-o", "json")
        revs = [r["name"] for r in json.loads(out)["revisions"]] if rc == 0 else []
        if "churn-00003" in revs:
            break
        time.sleep(0.3)
    check("churn-00003" in revs, "e with EDITOR=script made a new revision: %s" % revs)
    text = wait_for(lambda t: "+churn" in t and "applied" in t, 15)
    check("+churn" in text, "back on the models screen after editing")

    # Screens and help.
    tmux("send-keys", "-t", "top", "H")
    text = wait_for(lambda t: "ACTION" in t and "set-traffic" in t, 5)
    check("set-traffic" in text and "rollback" in text, "H shows the history")
    tmux("send-keys", "-t", "top", "?")
    text = wait_for(lambda t: "canary share +5" in t, 5)
    check("canary share +5" in text, "? shows help generated from the key table")
    tmux("send-keys", "-t", "top", "Escape")
    tmux("send-keys", "-t", "top", "/", "fra", "Enter")
    text = wait_for(lambda t: "+fraud" in t and "+churn" not in t, 5)
    check("+fraud" in text and "+churn" not in text, "/ filters the models")
    tmux("send-keys", "-t", "top", "Escape")

    # Too small, then back.
    tmux("resize-window", "-t", "top", "-x", "60", "-y", "15")
    text = wait_for(lambda t: "terminal too small" in t, 5)
    check("terminal too small" in text, "a 60x15 terminal gets the too-small screen")
    tmux("resize-window", "-t", "top", "-x", "80", "-y", "24")
    text = wait_for(lambda t: "+churn" in t, 5)
    check("+churn" in text and "QPS" in text, "works at 80x24")

    # A hung engine (SIGSTOP): shown within 5 s, keys keep working.
    os.kill(engine_pid, signal.SIGSTOP)
    t0 = time.time()
    tmux("send-keys", "-t", "top", "N")
    text = wait_for(lambda t: re.search(r"\ba +local .*(down|stale)", t), 8)
    took = time.time() - t0
    check(re.search(r"\ba +local .*(down|stale)", text) is not None and took <= 6,
          "a hung node shows as down/stale on N within 5 s (%.1fs)" % took)
    tmux("send-keys", "-t", "top", "M")
    text = wait_for(lambda t: "stale" in t and "+churn" in t, 5)
    check("stale" in text, "its models say their figures are stale, with an age")
    # A change made while the node is away fails there and is recorded; once it answers
    # again the console catches it up (a reconcile, recorded in history).
    rc, _, _ = ksv("--timeout", "3", "rollout", "rollback", "churn")
    check(rc == 1, "a rollback while the node hangs fails for that node")
    os.kill(engine_pid, signal.SIGCONT)
    rc, out, _ = ksv("get", "revisions", "churn", "-o", "json")
    want = {r["name"]: r["traffic"] for r in json.loads(out)["revisions"] if r["traffic"]} if rc == 0 else {}
    deadline = time.time() + 20
    live, caught_up = None, False
    while time.time() < deadline:
        live = {k: v for k, v in engine_split("churn").items() if v}
        rc, out, _ = ksv("history", "churn", "-o", "json", "--limit", "3")
        rows = json.loads(out) if rc == 0 else []
        # Newest first: a successful reconcile after the one that failed during the hang.
        caught_up = (len(rows) >= 2 and rows[0]["action"] == "reconcile" and
                     rows[0]["result"].startswith("ok") and
                     any(r["action"] == "reconcile" and "failed" in r["result"] for r in rows[1:]))
        if live == want and caught_up:
            break
        time.sleep(0.3)
    check(live == want and caught_up,
          "when the node answers again ksv-top reconciles it, recorded in history (%s, want %s)" % (live, want))

    # q exits and leaves nothing behind.
    tmux("send-keys", "-t", "top", "q")
    deadline = time.time() + 10
    while time.time() < deadline and top_pid and pid_alive(top_pid):
        time.sleep(0.1)
    check(top_pid and not pid_alive(top_pid), "q exits ksv-top")
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    check(not any(TOP in line and db in line for line in ps.splitlines()),
          "no ksv-top process left behind")

    # --once -o json.
    r = subprocess.run([TOP, "--once", "-o", "json"], capture_output=True, text=True, env=env,
                       timeout=30)
    try:
        snap = json.loads(r.stdout)
    except ValueError:
        snap = {}
    names = sorted(m["name"] for m in snap.get("models", []))
    churn = [m for m in snap.get("models", []) if m["name"] == "churn"]
    check(r.returncode == 0 and names == ["churn", "fraud"], "--once -o json lists the models")
    check(bool(churn) and isinstance(churn[0].get("qps"), (int, float)) and churn[0]["qps"] > 0,
          "--once -o json has live QPS for churn")
    # The console stored its scrapes as samples; a fresh ksv-top starts its sparkline
    # from them (it survives a restart), so the history is longer than one refresh.
    import sqlite3
    conn = sqlite3.connect(db)
    stored = conn.execute("select count(*) from metric_samples where model = 'churn'").fetchone()[0]
    conn.close()
    check(stored > 0, "ksv-top stores its scrapes as samples in SQLite (%d rows)" % stored)
    hist = churn[0].get("qps_history") or [] if churn else []
    check(len(hist) >= 5 and any(isinstance(v, (int, float)) and v > 0 for v in hist[:-2]),
          "a restarted ksv-top's QPS sparkline starts from the stored samples (%d points)" % len(hist))
    r = subprocess.run([TOP, "--prometheus", "ftp://x", "--once", "-o", "json"], capture_output=True,
                       text=True, env=env, timeout=30)
    check(r.returncode != 0 and "--prometheus" in r.stderr, "--prometheus refuses a URL that is not http(s)")
finally:
    tmux("kill-server")
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if engine_pid:
        try:
            os.kill(engine_pid, signal.SIGCONT)
            os.kill(engine_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
finish()
