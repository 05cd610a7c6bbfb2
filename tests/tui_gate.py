"""ksv-top and a release gate, driven inside tmux: the models list shows the gate's phase
and the canary's weight, the detail screen its step, set vs actual weight, check table and
reason; `p` pauses and resumes it and `A` aborts it, each through the confirm dialog (focus on
Cancel, as rollback's), and the engine's state follows."""
import functools
import http.client
import json
import subprocess
import os
import shutil
import sys
import threading
import time

from ksvtest import (DATA, ENGINE, TOP, canary_yaml, check, finish, isvc_yaml, ksv_cli, load_json,
                     sanitizer_env, sanitizer_reports, stop_engine, tmpdir, write_file)
from tmuxterm import Tmux

if not shutil.which("tmux"):
    print("SKIP: tmux is not installed")
    sys.exit(77)

work = tmpdir("ksv-top-gate-")
node_dir = os.path.join(work, "node-a")
db = os.path.join(work, "ksv.db")
run_env = {"KSV_DB": db, "XDG_STATE_HOME": os.path.join(work, "state"), "KSV_ENGINE": ENGINE,
           "USER": "tester", "LC_ALL": "C.UTF-8", "TERM": "tmux-256color"}
run_env.update(sanitizer_env(work))
env = dict(os.environ, **run_env)
MODELS = os.path.join(DATA, "models")
BODY = json.dumps(load_json("requests", "churn-v1.json"))
term = Tmux("ksvtopgate")


ksv = ksv_cli(env)[0]
write = functools.partial(write_file, work)


def isvc(model_dir):
    return isvc_yaml("churn", "%s/%s/model.json" % (MODELS, model_dir))


CANARY = canary_yaml("churn", [10, 20, 30, 40, 50, 60, 70, 80, 90], interval="2s")


def engine():
    with open(os.path.join(node_dir, "address")) as f:
        host, port = f.read().strip().rsplit(":", 1)
    with open(os.path.join(node_dir, "token")) as f:
        token = f.read().strip()
    return host, int(port), token


def gate_line(text):
    """The detail screen's line under RELEASE GATE (phase, node, step, weights)."""
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if "RELEASE GATE" in l and i + 1 < len(lines):
            return lines[i + 1].strip()
    return ""


def engine_rollout():
    host, port, token = engine()
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/ksv/v1/models/churn", headers={"Authorization": "Bearer " + token})
    body = json.loads(c.getresponse().read())
    c.close()
    return body.get("rollout") or {}


stop = threading.Event()


def traffic():
    host, port, _ = engine()
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("POST", "/v2/models/churn/infer", body=BODY,
                         headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn = None
        stop.wait(0.02)


loader = None
try:
    check(ksv("node", "add", "a", "local", "--engine-state-dir", node_dir)[0] == 0, "node added")
    check(ksv("apply", "-f", write("v1.yaml", isvc("churn-v1")))[0] == 0, "v1 applied")
    loader = threading.Thread(daemon=True, target=traffic)
    loader.start()
    rc, out, err = ksv("apply", "-f", write("v2.yaml", isvc("churn-v2") + CANARY))
    check(rc == 0, "gated rollout started (%s)" % err.strip()[-200:])
    # The one-shot snapshot carries the gate too, for scripts.
    snap = subprocess.run([TOP, "--once", "-o", "json"], capture_output=True, text=True,
                          env=env, timeout=60)
    churn = [m for m in json.loads(snap.stdout or "{}").get("models", []) if m["name"] == "churn"]
    gate = churn[0].get("gate") if churn else None
    check(gate and gate["phase"] in ("Initializing", "Progressing", "Waiting") and
          gate["canary"] == "churn-00002" and gate["node"] == "a" and
          [c["metric"] for c in gate["checks"]] == ["request-success-rate"],
          "ksv-top --once -o json has the model's gate: %s" % gate)
    term.start([TOP, "-d", "1"], run_env, cols=120, lines=36)

    text = term.wait_for(lambda t: "Prog " in t or "Wait " in t, timeout=20)
    row = [l for l in text.splitlines() if "churn" in l]
    check(row and ("Prog " in row[0] or "Wait " in row[0]) and "%" in row[0],
          "the models list shows the gate's phase and weight: %s" % (row[0].strip() if row else text))

    term.keys("Enter")
    text = term.wait_for(lambda t: "RELEASE GATE" in t and "request-success-rate" in t, timeout=15)
    check("RELEASE GATE" in text and "weight set" in text and "actual" in text and "step" in text,
          "the detail screen shows step, set and actual weight")
    check("request-success-rate" in text and "VERDICT" in text, "and the check table:\n" + text)

    term.keys("?")
    text = term.wait_for(lambda t: "pause / resume the release gate" in t, timeout=10)
    check("pause / resume the release gate" in text and "abort the release gate" in text,
          "? documents p and A")
    term.keys("Escape")

    term.keys("p")
    text = term.wait_for(lambda t: "Pause the gate" in t, timeout=10)
    check("Pause the gate" in text and "Paused" in text, "p opens the pause dialog:\n" + text)
    term.keys("Enter")  # focus starts on Cancel
    time.sleep(1.0)
    check(engine_rollout().get("phase") != "Paused", "Enter on Cancel changes nothing")
    term.keys("p")
    term.wait_for(lambda t: "Pause the gate" in t, timeout=10)
    term.keys("Tab", "Enter")
    deadline = time.time() + 15
    while time.time() < deadline and engine_rollout().get("phase") != "Paused":
        time.sleep(0.2)
    ro = engine_rollout()
    check(ro.get("phase") == "Paused", "p + confirm pauses the engine's gate (%s)" % ro.get("phase"))
    text = term.wait_for(lambda t: gate_line(t).startswith("Paused"), timeout=20)
    check(gate_line(text).startswith("Paused"), "the detail screen shows Paused: %s" % gate_line(text))

    term.keys("p")
    text = term.wait_for(lambda t: "Resume the gate" in t, timeout=10)
    term.keys("Tab", "Enter")
    deadline = time.time() + 15
    while time.time() < deadline and engine_rollout().get("phase") == "Paused":
        time.sleep(0.2)
    check(engine_rollout().get("phase") in ("Progressing", "Waiting"), "p + confirm resumes it")

    term.keys("A")
    text = term.wait_for(lambda t: "Abort the gate" in t, timeout=10)
    check("Abort the gate" in text and "stable takes 100%" in text, "A opens the abort dialog:\n" + text)
    term.keys("Tab", "Enter")
    deadline = time.time() + 15
    while time.time() < deadline and engine_rollout().get("phase") != "Failed":
        time.sleep(0.2)
    ro = engine_rollout()
    check(ro.get("phase") == "Failed" and "aborted" in ro.get("reason", ""),
          "A + confirm aborts the gate (%s)" % ro.get("reason"))
    text = term.wait_for(lambda t: "Failed" in t and "aborted" in t, timeout=15)
    check("why: " in text and "aborted" in text, "the detail screen says why it halted")
    term.keys("q")
    time.sleep(0.5)
finally:
    stop.set()
    if loader:
        loader.join(15)
    term.kill()
    stop_engine(node_dir)
asan = sanitizer_reports(work)
check(not asan, "no sanitizer report from ksv-top (%s)" % asan)
finish()
