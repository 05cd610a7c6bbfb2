"""`ksv-top --demo` shows a release gate, inside tmux: the demo rolls churn's canary out
through the engine's gate (10% steps every 5 s, judged on success rate and P99), which a
viewer sees progress in the models list and the detail screen until it is promoted; the
console itself imports the engine's events, so the promotion shows up in its history
screen (actor gate@demo) and its split with nobody running ksv. Then `:badcanary` applies
a canary that answers 400 to every request, and the gate rolls it back by itself while the
promoted revision keeps serving. q removes the demo's directory."""
import http.client
import json
import os
import shutil
import sys
import time

from ksvtest import TOP, check, finish, lock_pid, sanitizer_env, sanitizer_reports, tmpdir
from tmuxterm import Tmux

if not shutil.which("tmux"):
    print("SKIP: tmux is not installed")
    sys.exit(77)

work = tmpdir("ksv-top-demo-")
run_env = {"TMPDIR": work, "LC_ALL": "C.UTF-8", "TERM": "tmux-256color", "USER": "tester",
           "XDG_STATE_HOME": os.path.join(work, "state")}
if os.environ.get("KSV_DATA_DIR"):
    run_env["KSV_DATA_DIR"] = os.environ["KSV_DATA_DIR"]
run_env.update(sanitizer_env(work))
term = Tmux("ksvtopdemo")


def demo_dir():
    dirs = [d for d in os.listdir(work) if d.startswith("ksv-demo-")]
    return os.path.join(work, dirs[0]) if dirs else None


def engine_model(model):
    """The demo engine's own view of a model (its state dir holds address and token)."""
    engine_dir = os.path.join(demo_dir(), "engine")
    with open(os.path.join(engine_dir, "address")) as f:
        host, port = f.read().strip().rsplit(":", 1)
    with open(os.path.join(engine_dir, "token")) as f:
        token = f.read().strip()
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request("GET", "/ksv/v1/models/" + model, headers={"Authorization": "Bearer " + token})
    body = json.loads(c.getresponse().read())
    c.close()
    return body


def gate_line(text):
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if "RELEASE GATE" in l and i + 1 < len(lines):
            return lines[i + 1].strip()
    return ""


def churn_row(text):
    rows = [l for l in text.splitlines() if "churn" in l]
    return rows[0].strip() if rows else ""


try:
    term.start([TOP, "--demo", "-d", "1"], run_env, cols=130, lines=48)
    text = term.wait_for(lambda t: "Prog " in churn_row(t) or "Init " in churn_row(t), timeout=90)
    check("[demo]" in text and ":badcanary" in text, "the header names the demo and :badcanary")
    check("Prog " in churn_row(text) or "Init " in churn_row(text),
          "the models list shows churn's gated rollout: %s" % churn_row(text))

    term.keys("Enter")
    text = term.wait_for(lambda t: gate_line(t).startswith("Progressing"), timeout=30)
    check(gate_line(text).startswith("Progressing") and "step " in gate_line(text),
          "the detail screen shows the gate progressing: %s" % gate_line(text))
    check("request-success-rate" in text and "request-duration" in text,
          "with its check table")
    weights = set()
    deadline = time.time() + 120
    while time.time() < deadline:
        text = term.screen()
        line = gate_line(text)
        if "weight set" in line:
            weights.add(line.split("weight set")[1].split()[0])
        if line.startswith("Succeeded") or line.startswith("Failed"):
            break
        time.sleep(0.3)
    check(gate_line(text).startswith("Succeeded"),
          "the gate promotes the healthy canary by itself: %s" % gate_line(text))
    check(len(weights) >= 3, "a viewer saw the weight move step by step: %s" % sorted(weights))
    ro = engine_model("churn").get("rollout") or {}
    promoted = ro.get("canary")
    check(ro.get("phase") == "Succeeded" and promoted == "churn-00002",
          "the engine says so too (%s %s)" % (ro.get("phase"), promoted))
    # The console imported the engine's events: the desired split follows the promotion.
    text = term.wait_for(lambda t: "STABLE" in t and "churn-00002  100%" in t, timeout=20)
    check("churn-00002  100%" in text,
          "the console's split follows the gate's promotion:\n" + "\n".join(text.splitlines()[:6]))
    term.keys("H")
    text = term.wait_for(lambda t: "gate-succeeded" in t, timeout=20)
    check("gate-succeeded" in text and "gate@demo" in text,
          "the history screen has the gate's events, imported by the console itself")
    check(text.count("gate-succeeded") == 1, "once:\n" + text)
    term.keys("Escape")

    term.keys(":", "badcanary", "Enter")
    text = term.wait_for(lambda t: "bad canary" in t or "applied" in t, timeout=30)
    deadline = time.time() + 90
    ro = {}
    while time.time() < deadline:
        ro = engine_model("churn").get("rollout") or {}
        if ro.get("canary") != promoted and ro.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(0.3)
    check(ro.get("phase") == "Failed" and "request-success-rate" in ro.get("reason", ""),
          ":badcanary: the gate rolls the bad canary back by itself (%s: %s)" %
          (ro.get("phase"), ro.get("reason")))
    check(ro.get("stable") == promoted, "over the promoted revision %s (stable %s)" %
          (promoted, ro.get("stable")))
    traffic = {r["name"]: r["traffic"] for r in engine_model("churn").get("revisions", [])}
    check(traffic.get(promoted) == 100, "which serves 100%% again: %s" % traffic)
    term.keys("Enter")
    text = term.wait_for(lambda t: gate_line(t).startswith("Failed") and "why:" in t, timeout=20)
    check(gate_line(text).startswith("Failed") and "why:" in text,
          "the detail screen shows the rollback and why:\n%s" % text)
    d = demo_dir()
    term.keys("q")
    deadline = time.time() + 30
    while time.time() < deadline and os.path.exists(d):
        time.sleep(0.2)
    check(not os.path.exists(d), "q removes the demo's directory")

    # Closing the terminal (tmux's server goes: SIGHUP) quits as q does: nothing is left.
    # A server of its own: the first one may still be on its way out.
    term.kill()
    term = Tmux("ksvtopdemo2")
    term.start([TOP, "--demo", "-d", "1"], run_env, cols=130, lines=48)
    term.wait_for(lambda t: "[demo]" in t and churn_row(t).startswith("default"), timeout=90)
    d = demo_dir()
    pid = lock_pid(os.path.join(d, "engine")) if d else None
    check(d and pid, "a second demo runs (engine pid %s)" % pid)
    term.kill()
    deadline = time.time() + 30
    while time.time() < deadline and d and os.path.exists(d):
        time.sleep(0.2)
    check(d and not os.path.exists(d), "a closed terminal (SIGHUP) removes the demo's directory")
    alive = True
    while time.time() < deadline and alive:
        try:
            os.kill(pid, 0)
            time.sleep(0.2)
        except OSError:
            alive = False
    check(not alive, "and stops its engine")
finally:
    term.kill()
asan = sanitizer_reports(work)
check(not asan, "no sanitizer report from ksv-top (%s)" % asan)
finish()
