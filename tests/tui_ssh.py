"""ksv-top watching an edge node reached over SSH (a real OpenSSH sshd on 127.0.0.1, keys made
here), driven inside tmux:
  - the SSH session and tunnel stay open between refreshes: ten probes cost one login;
  - when the link drops the node shows down within 5 s, and ksv-top redials with exponential
    backoff (counted at a listener that takes sshd's port while it is away: a redial per
    refresh would be ~16 attempts in 8 s, backoff makes it about 4);
  - a change made through `ksv` while the node is away fails for that node; when sshd comes
    back ksv-top reconnects by itself, catches the node up (a history row), and its status
    line shows the model file's upload;
  - the canary slider and promote, driven from ksv-top, reach the edge's engine;
  - q exits and closes the tunnel.
Skips (77) when tmux or openssh-server is missing."""
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import sys
import threading
import time

from ksvtest import (ksv_cli, DATA, ENGINE, TOP, check, finish, free_port, sanitizer_env,
                     sanitizer_reports, stop_engine, tmpdir)
from sshnode import SshNode, skip_unless_available
from tmuxterm import Tmux

skip_unless_available()
if not shutil.which("tmux"):
    print("SKIP: tmux is not installed")
    sys.exit(77)

work = tmpdir("ksv-top-ssh-")
db = os.path.join(work, "ksv.db")
run_env = {"KSV_DB": db, "HOME": work, "USER": "tester", "XDG_STATE_HOME": os.path.join(work, "state"),
           "KSV_ENGINE": ENGINE, "SSH_AUTH_SOCK": "", "LC_ALL": "C.UTF-8", "TERM": "tmux-256color"}
run_env.update(sanitizer_env(work))
env = dict(os.environ, **run_env)
box = SshNode(work)
engine_dir = os.path.join(work, "edge-engine")
engine_port = free_port()
term = Tmux("ksvtopssh")


ksv, _ = ksv_cli(env)


def engine_split(model):
    with open(os.path.join(engine_dir, "token")) as f:
        token = f.read().strip()
    c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=10)
    c.request("GET", "/ksv/v1/models/" + model, headers={"Authorization": "Bearer " + token})
    body = json.loads(c.getresponse().read() or b"{}")
    c.close()
    return body.get("effective_traffic", {})


def manifest(path, version, canary=None):
    with open(path, "w") as f:
        f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n"
                "  name: churn\nspec:\n  predictor:\n%s    model:\n      modelFormat:\n"
                "        name: xgboost\n      storageUri: %s/models/%s/model.json\n"
                % ("    canaryTrafficPercent: %d\n" % canary if canary is not None else "",
                   DATA, version))
    return path


def edge_row(text):
    """The edge node's row and the error line under it, on the nodes screen."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(" edge "):
            return line, (lines[i + 1] if i + 1 < len(lines) else "")
    return "", ""


class Doorman:
    """Holds sshd's port while sshd is away: accepts each connection, counts it, closes it
    (to ksv it is a host that answers but speaks no SSH, so each redial is one accept)."""

    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.stopping = False
        self.thread = threading.Thread(daemon=True, target=self._run)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            c.close()

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


doorman = None
try:
    check(box.start(), "sshd runs on 127.0.0.1:%d" % box.port)
    rc, out, err = ksv("node", "add", "edge", box.address, "--trust-new",
                       *box.node_args(ENGINE, engine_dir, engine_port))
    check(rc == 0, "node add edge over SSH (%s)" % err.strip()[:160])
    rc, out, err = ksv("apply", "-f", manifest(os.path.join(work, "v1.yaml"), "churn-v1"))
    check(rc == 0 and engine_split("churn") == {"churn-00001": 100}, "churn applied through SSH")

    logins_before = box.logins()
    term.start([TOP, "-d", "0.5"], run_env)
    top_pid = int(term.run("display-message", "-p", "-t", "top", "#{pane_pid}").strip() or 0)
    term.keys("N")
    text = term.wait_for(lambda t: edge_row(t)[0].split()[3:4] == ["up"])
    check(edge_row(text)[0].split()[3:4] == ["up"], "the nodes screen shows edge up (%s)" % edge_row(text)[0].strip())

    # One SSH session for many refreshes: the tunnel stays open between probes.
    time.sleep(5)
    text = term.screen()
    logins = box.logins() - logins_before
    check(edge_row(text)[0].split()[3:4] == ["up"], "edge is still up (and fresh) after 5 s of refreshes")
    check(logins == 1, "about 10 refreshes over 5 s cost %d SSH login(s) (want 1: the tunnel is kept)" % logins)

    # The link drops: down within 5 s, then redials with backoff.
    box.stop()
    t0 = time.time()
    doorman = Doorman(box.port)
    text = term.wait_for(lambda t: edge_row(t)[0].split()[3:4] == ["down"], timeout=10)
    took = time.time() - t0
    row, why = edge_row(text)
    check(row.split()[3:4] == ["down"] and took <= 5.0,
          "with the link cut ksv-top shows edge down within 5 s (%.1f s)" % took)
    text = term.wait_for(lambda t: "reconnecting in" in edge_row(t)[1], timeout=5)
    check("reconnecting in" in edge_row(text)[1], "the node's line says when it redials (%s)" % edge_row(text)[1].strip()[:100])
    start_count = doorman.accepted
    waits = []
    end = time.time() + 8
    while time.time() < end:
        waits += [float(x) for x in re.findall(r"reconnecting in ([0-9.]+) s", edge_row(term.screen())[1])]
        time.sleep(0.25)
    attempts = doorman.accepted - start_count
    check(1 <= attempts <= 6,
          "ksv-top redialled %d times in 8 s at a 0.5 s refresh (backoff; ~16 without)" % attempts)
    # 1 s, 2 s, 4 s (+-20 %): by the third failure the wait shown exceeds the first one's.
    check(waits and max(waits) > 2.5, "the wait between redials grows (longest shown %.1f s)" % max(waits or [0]))

    # A change while the node is away fails for it and is recorded.
    rc, out, err = ksv("--timeout", "5", "apply", "-f",
                       manifest(os.path.join(work, "v2.yaml"), "churn-v2", canary=10))
    check(rc == 1, "apply while the node is away fails for it (%s)" % err.strip()[:120])
    doorman.close()
    doorman = None

    # sshd returns: ksv-top reconnects by itself and catches the node up, uploading churn-v2.
    check(box.start(), "sshd is back")
    t0 = time.time()
    text = term.wait_for(lambda t: "uploaded" in t and "churn-v2/model.json" in t, timeout=45)
    status = [l for l in text.splitlines() if "uploaded" in l]
    check(bool(status) and "node edge" in status[0],
          "the status line shows the catch-up's model upload (%s, after %.1f s)" % (status[0].strip()[:100] if status else "none", time.time() - t0))
    # The catch-up records its row once it has seen the change in effect, a poll after
    # the engine applied it: wait for both, not for the engine alone.
    deadline = time.time() + 20
    split, rows = {}, []
    while time.time() < deadline:
        split = engine_split("churn")
        conn = sqlite3.connect(db)
        rows = conn.execute("select action, result from history where model = 'default/churn' "
                            "order by id desc limit 3").fetchall()
        conn.close()
        if (split == {"churn-00001": 90, "churn-00002": 10} and rows and
                rows[0][0] == "reconcile" and rows[0][1].startswith("ok")):
            break
        time.sleep(0.3)
    check(split == {"churn-00001": 90, "churn-00002": 10},
          "the node serves the change made while it was away (%s)" % split)
    check(rows and rows[0][0] == "reconcile" and rows[0][1].startswith("ok"),
          "the catch-up is a history row (%s)" % rows[:2])
    text = term.wait_for(lambda t: edge_row(t)[0].split()[3:4] == ["up"], timeout=10)
    check(edge_row(text)[0].split()[3:4] == ["up"], "edge is up again on the nodes screen")

    # Driven from ksv-top like a local node: the canary slider and promote reach the edge.
    term.keys("M")
    term.wait_for(lambda t: "churn" in t and "90/10" in t, timeout=10)
    term.keys("+")
    term.wait_for(lambda t: "85/15" in t, timeout=5)
    term.keys("Enter")
    deadline = time.time() + 30
    while time.time() < deadline and engine_split("churn") != {"churn-00001": 85, "churn-00002": 15}:
        time.sleep(0.3)
    split = engine_split("churn")
    check(split == {"churn-00001": 85, "churn-00002": 15}, "+ and Enter in ksv-top move the edge's canary to 15%% (%s)" % split)
    text = term.wait_for(lambda t: "node edge: ok" in t, timeout=10)
    check("node edge: ok" in text, "the status line shows the edge's result")
    term.keys("P")
    term.wait_for(lambda t: "Promote" in t and "Cancel" in t, timeout=5)
    term.keys("Tab")
    term.keys("Enter")
    deadline = time.time() + 30
    while time.time() < deadline and engine_split("churn") != {"churn-00002": 100}:
        time.sleep(0.3)
    split = engine_split("churn")
    check(split == {"churn-00002": 100}, "P + confirm in ksv-top promotes the canary on the edge (%s)" % split)

    # q exits: the kept tunnel's thread ends with it.
    term.keys("q")
    deadline = time.time() + 10
    alive = True
    while time.time() < deadline and alive:
        try:
            os.kill(top_pid, 0)
            time.sleep(0.1)
        except OSError:
            alive = False
    check(top_pid and not alive, "q exits ksv-top")
    reports = sanitizer_reports(work)
    check(not reports, "no sanitizer report from ksv-top (%s)" % reports)
finally:
    if doorman:
        doorman.close()
    term.kill()
    stop_engine(engine_dir)
    box.stop()
finish()
