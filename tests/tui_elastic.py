"""ksv-top's namespaces and cost screens (DESIGN.md §7 and §11, issue 13 items 5-7).

Two namespaces on a real engine (its test clock starts 2 h in the past, so an hour of
residency passes in a moment): team-a/fraud with minReplicas 0 under a ResourceQuota
(count 3, requests.memory 1Gi), team-b/iris always on. After an hour fraud scales to zero;
`ksv cost` reads the engine's events into the database. Then ksv-top:
  - `--once -o json` has the namespaces rows (models, scaled to zero, quota used/hard) and
    the cost rows, equal to what `ksv cost -o json` computed from the same events;
  - in tmux, `Q` shows the namespaces screen (quota "1/3" and "128Mi/1Gi", fraud at zero)
    and `C` the cost screen (fraud's loaded hours as `ksv cost` has them, a TOTAL row);
    `:cost` and `:namespaces` reach them too, and both fit an 80x24 terminal.
"""
import json
import os
import re
import subprocess
import time

from ksvtest import (ksv_cli, ENGINE, TOP, Engine, check, finish, isvc_yaml, load_json, model_path,
                     quota_yaml, tmpdir)
from tmuxterm import Tmux

work = tmpdir("ksv-tui-elastic-")
db = os.path.join(work, "ksv.db")
env = dict(os.environ, KSV_DB=db, XDG_STATE_HOME=os.path.join(work, "state"),
           XDG_CONFIG_HOME=os.path.join(work, "config"), KSV_ENGINE=ENGINE, USER="tester")
env.pop("KSV_CONFIG", None)
ksv, ksv_json = ksv_cli(env)
term = Tmux("ksvelastic")

MANIFESTS = "---\n".join([
    quota_yaml("team-a-quota", "team-a", {"count/inferenceservices.serving.kserve.io": '"3"',
                                          "requests.memory": "1Gi"}),
    isvc_yaml("fraud", model_path("fraud"), namespace="team-a", min_replicas=0,
              requests={"memory": "128Mi"}),
    isvc_yaml("iris", model_path("iris"), namespace="team-b")])


def state(eng, model):
    return eng.request("GET", "/ksv/v1/models/" + model, admin=True)[2]["revisions"][0]["state"]


try:
    eng = Engine(extra_env={"KSV_TEST_CLOCK": "-7200"})
    ksv("node", "add", "n1", "http://127.0.0.1:%d" % eng.port, "--token-file",
        os.path.join(eng.state_dir, "token"))
    path = os.path.join(work, "m.yaml")
    with open(path, "w") as f:
        f.write(MANIFESTS)
    rc, out, err = ksv("apply", "-f", path, "--node", "n1")
    check(rc == 0, "quota and two models applied (%s)" % (err.strip() or out.strip()))
    for _ in range(5):
        eng.request("POST", "/v2/models/fraud/infer", load_json("requests", "fraud.json"))
    eng.request("POST", "/ksv/v1/test/clock", {"advance_s": 3600}, admin=True)
    deadline = time.time() + 20
    while time.time() < deadline and state(eng, "fraud") != "scaled-to-zero":
        time.sleep(0.05)
    check(state(eng, "fraud") == "scaled-to-zero", "fraud scaled to zero after the hour")
    st = eng.request("POST", "/v2/models/fraud/infer", load_json("requests", "fraud.json"))[0]
    check(st == 200, "a cold start brings it back")
    eng.request("POST", "/ksv/v1/test/clock", {"advance_s": 600}, admin=True)
    deadline = time.time() + 20
    while time.time() < deadline and state(eng, "fraud") != "scaled-to-zero":
        time.sleep(0.05)
    check(state(eng, "fraud") == "scaled-to-zero", "and scales to zero again")
    rc, cost = ksv_json("cost")
    check(rc == 0 and len(cost) == 2, "ksv cost read the events (%s)" % cost)
    want = {r["model"]: r for r in cost} if isinstance(cost, list) else {}

    # --once -o json: the same figures.
    r = subprocess.run([TOP, "--once", "-o", "json"], capture_output=True, text=True, env=env,
                       timeout=60)
    snap = json.loads(r.stdout) if r.returncode == 0 else {}
    spaces = {n["namespace"]: n for n in snap.get("namespaces", [])}
    a = spaces.get("team-a", {})
    check(a.get("models") == 1 and a.get("scaled_to_zero") == 1 and
          a.get("quota") == "team-a-quota: isvc 1/3, memory 128Mi/1Gi",
          "namespaces: team-a has 1 model at zero, quota 1/3 and 128Mi/1Gi (%s)" % a)
    check(spaces.get("team-b", {}).get("models") == 1 and spaces["team-b"]["quota"] == "",
          "namespaces: team-b has 1 model and no quota")
    # Loaded hours and requests are closed figures; time at zero is still open and ends at
    # ksv's clock here but at the engine's (test) clock in `ksv cost`.
    got = {c["model"]: c for c in snap.get("cost") or []}
    f = got.get("fraud", {})
    check(abs(f.get("loaded_hours", -1) - want.get("fraud", {}).get("loaded_hours", -2)) < 2e-3
          and f.get("requests") == 6 and f.get("namespace") == "team-a",
          "cost rows as ksv cost computed them (fraud %s vs %s)" % (f, want.get("fraud")))

    revs = {r["name"]: r for m in snap.get("models", []) for r in m["revisions"]}
    fr, ir = revs.get("fraud-00001", {}), revs.get("iris-00001", {})
    check(fr.get("cold_starts") == 1 and (fr.get("cold_start_p99_ms") or 0) > 0 and
          fr.get("replicas") == 0 and ir.get("replicas") == 1,
          "--once: fraud 1 cold start with its P99, 0 replicas at zero; iris 1 replica (%s, %s)"
          % ({k: fr.get(k) for k in ("cold_starts", "cold_start_p99_ms", "replicas")},
             ir.get("replicas")))

    # The screens in tmux.
    term.start([TOP, "-d", "1"], {"KSV_DB": db, "XDG_STATE_HOME": env["XDG_STATE_HOME"],
                                  "XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"], "LC_ALL": "C.UTF-8",
                                  "TERM": "tmux-256color"}, cols=120, lines=30)
    term.wait_for(lambda t: "fraud" in t)
    term.keys(" ")  # the cursor is on fraud (first by name): its revisions
    text = term.wait_for(lambda t: re.search(r"fraud-00001.*zero", t))
    check(re.search(r"fraud-00001.*zero", text), "the list shows fraud-00001 at zero")
    term.keys("Enter")
    text = term.wait_for(lambda t: "cold starts 1 (P99 " in t)
    check(re.search(r"mem 0B  replicas 0  cold starts 1 \(P99 [0-9.]+ms\)", text),
          "detail: replicas and cold starts with their P99")
    if not re.search(r"replicas 0  cold starts 1", text):
        print(text)
    term.keys("Escape")
    term.keys("Q")
    text = term.wait_for(lambda t: re.search(r"team-a\s+1\s+1\s+1\s.*isvc 1/3", t))
    row = [l for l in text.splitlines() if l.strip().startswith("team-a")]
    check(bool(row) and re.search(r"team-a\s+1\s+1\s+1\s.*isvc 1/3, memory 128Mi/1Gi", row[0]),
          "Q: team-a 1 model, 1 revision, 1 at zero, quota 1/3 (%s)" % (row and row[0]))
    term.keys("C")
    loaded = "%.2f" % want.get("fraud", {}).get("loaded_hours", -1)
    text = term.wait_for(lambda t: "LOADED-H" in t and "fraud-00001" in t and "TOTAL" in t)
    row = [l for l in text.splitlines() if "fraud-00001" in l]
    check(bool(row) and row[0].split()[3] == loaded,
          "C: fraud's loaded hours %s as ksv cost has them (%s)" % (loaded, row and row[0]))
    term.keys(":", "namespaces", "Enter")
    text = term.wait_for(lambda t: "QUOTA used/hard" in t)
    check("QUOTA used/hard" in text, ":namespaces opens the namespaces screen")
    term.kill()
    term = Tmux("ksvelastic80x24")
    term.start([TOP, "-d", "1"], {"KSV_DB": db, "XDG_STATE_HOME": env["XDG_STATE_HOME"],
                                  "XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"], "LC_ALL": "C.UTF-8",
                                  "TERM": "tmux-256color"}, cols=80, lines=24)
    term.wait_for(lambda t: "fraud" in t)
    term.keys(":", "cost", "Enter")
    text = term.wait_for(lambda t: "fraud-00001" in t and "TOTAL" in t)
    check("fraud-00001" in text and "TOTAL" in text and "too small" not in text,
          ":cost at 80x24 shows the rows and the total")
    if "TOTAL" not in text:
        print(text)
finally:
    term.kill()
finish()
