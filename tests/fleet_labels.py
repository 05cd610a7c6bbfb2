"""Node labels and selectors on a fleet of 12 real engines (--threads 1) as http:// nodes.

`node add --label`, `node label` (set, change, remove, history rows with before and after),
`node ls` / `get nodes` with --show-labels and -l SELECTOR (K=V, K!=V, K, !K), placement by
the `ksv.io/node-selector` annotation and by `apply -l`: the model is served by exactly the
engines the selector picks (asked of each engine, not of ksv's store), and a node labelled
later joins at the next apply. Bad input: a selector that matches nothing, a malformed
selector (annotation: file and line; -l: usage), both placements at once, bad keys and
values (refused, the message printable), an unknown node. ksv-top's nodes screen (tmux,
when installed): a LABELS column, `/` with a selector filters the nodes, `L` groups them
by a label key under headers, a malformed selector keeps every node and says why."""
import os
import re
import shutil

from fleetnodes import Fleet
from ksvtest import DATA, TOP, check, finish
from tmuxterm import Tmux

N = 12
EU = ["n%03d" % i for i in range(6)]
US = ["n%03d" % i for i in range(6, N)]


def doc(name, annotations):
    lines = ["apiVersion: serving.kserve.io/v1beta1", "kind: InferenceService",
             "metadata:", "  name: " + name]
    if annotations:
        lines.append("  annotations:")
        lines += ['    %s: "%s"' % kv for kv in annotations.items()]
    lines += ["spec:", "  predictor:", "    model:", "      modelFormat:", "        name: xgboost",
              "      storageUri: %s/models/iris/model.json" % DATA]
    return "\n".join(lines) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def serving(model):
    """The nodes whose engine serves model (ready, traffic applied), asked of each engine."""
    out = []
    for n in fleet.names:
        st = fleet.model_state(n, model)
        if st and st.get("traffic_applied") and st.get("effective_traffic"):
            out.append(n)
    return out


def printable(s):
    return all(c == "\n" or 0x20 <= ord(c) < 0x7f or ord(c) > 0x9f for c in s)


fleet = Fleet(N)
try:
    bad = fleet.register()[:0]
    # Re-register with labels: node add --label (repeatable) for the EU half.
    for name in fleet.names:
        fleet.ksv("node", "rm", name)
    for name in fleet.names:
        extra = ("--label", "region=eu", "--label", "tier=edge") if name in EU else ()
        rc, _, err = fleet.ksv("node", "add", name, "http://" + fleet.addr[name], "--token-file",
                               os.path.join(fleet.dirs[name], "token"), *extra)
        if rc != 0:
            bad.append((name, err.strip()))
    check(not bad, "12 engines registered, 6 with --label region=eu --label tier=edge %s" % bad[:2])
    for name in US:
        rc, out, err = fleet.ksv("node", "label", name, "region=us")
        check(rc == 0, "node label %s region=us (%s)" % (name, err.strip()))
    rc, out, err = fleet.ksv("node", "label", "n011", "gpu=a100", "tier=edge")
    check(rc == 0 and "gpu=a100" in out, "two labels at once (%s%s)" % (out.strip(), err.strip()))

    rc, nodes = fleet.ksv_json("node", "ls")
    labels = {n["name"]: n["labels"] for n in nodes} if rc == 0 else {}
    want = {n: {"region": "eu", "tier": "edge"} for n in EU}
    want.update({n: {"region": "us"} for n in US})
    want["n011"] = {"region": "us", "gpu": "a100", "tier": "edge"}
    check(labels == want, "node ls -o json: every node's labels (%s)" %
          {k: v for k, v in labels.items() if want.get(k) != v})
    rc, out, _ = fleet.ksv("get", "nodes", "--show-labels")
    row = [l for l in out.splitlines() if l.startswith("n011 ")]
    check(rc == 0 and "LABELS" in out.splitlines()[0] and row and "gpu=a100,region=us,tier=edge" in row[0],
          "get nodes --show-labels: a LABELS column, sorted by key (%s)" % row)
    rc, out, _ = fleet.ksv("node", "ls")
    check(rc == 0 and "LABELS" not in out, "node ls without --show-labels has no LABELS column")

    def selected(sel):
        rc, got = fleet.ksv_json("node", "ls", "-l", sel)
        return sorted(n["name"] for n in got) if rc == 0 else None
    check(selected("region=eu") == EU, "-l region=eu: the EU nodes")
    check(selected("region==us,tier=edge") == ["n011"], "-l region==us,tier=edge: n011")
    check(selected("tier!=edge") == US[:-1], "-l tier!=edge: absent or other")
    check(selected("gpu") == ["n011"], "-l gpu: has the label")
    check(selected("!gpu,region=us") == US[:-1], "-l '!gpu,region=us'")
    check(selected("region=mars") == [], "-l region=mars: none, exit 0")
    rc, _, err = fleet.ksv("node", "ls", "-l", "region=eu=x")
    check(rc == 2 and "label value" in err, "-l malformed: usage error 2 (%s)" % err.strip())

    # Changes and removals, with history.
    rc, out, err = fleet.ksv("node", "label", "n011", "gpu=h100", "tier-")
    check(rc == 0, "node label n011 gpu=h100 tier- (%s)" % err.strip())
    rc, hist = fleet.ksv_json("history", "--limit", "20")
    rows = [h for h in hist if h.get("action") == "node label" and h.get("node") == "n011"] if rc == 0 else []
    check(rows and rows[0].get("old") == "gpu=a100,region=us,tier=edge" and
          rows[0].get("new") == "gpu=h100,region=us",
          "history: node label with the labels before and after (%s)" % (rows[:1],))
    check(selected("tier=edge") == EU and selected("gpu=h100") == ["n011"],
          "the change is what selectors see")

    # Placement by annotation: exactly the engines the selector picks serve the model.
    work = fleet.work
    path = write(os.path.join(work, "eu.yaml"), doc("eu-model", {"ksv.io/node-selector": "region=eu"}))
    rc, out, err = fleet.ksv("--timeout", "60", "apply", "-f", path)
    check(rc == 0, "apply with ksv.io/node-selector: region=eu (%s)" % err.strip()[-300:])
    check(serving("eu-model") == EU, "the 6 EU engines serve it, no other (%s)" % serving("eu-model"))
    rc, models = fleet.ksv_json("get", "models")
    placed = [m["nodes"] for m in models if m["name"] == "eu-model"] if rc == 0 else []
    check(placed == [",".join(EU)], "get models: placed on the EU nodes (%s)" % placed)

    # A node labelled later joins at the next apply.
    fleet.ksv("node", "label", "n006", "region=eu")
    rc, _, err = fleet.ksv("--timeout", "60", "apply", "-f", path)
    check(rc == 0 and serving("eu-model") == sorted(EU + ["n006"]),
          "n006 labelled region=eu joins at the next apply (%s)" % serving("eu-model"))
    fleet.ksv("node", "label", "n006", "region=us")

    # apply -l overrides the manifest's placement.
    path2 = write(os.path.join(work, "gpu.yaml"), doc("gpu-model", {}))
    rc, _, err = fleet.ksv("--timeout", "60", "apply", "-f", path2, "-l", "gpu=h100")
    check(rc == 0 and serving("gpu-model") == ["n011"], "apply -l gpu=h100: n011 alone (%s %s)"
          % (serving("gpu-model"), err.strip()[-200:]))

    # Bad input.
    none = write(os.path.join(work, "none.yaml"), doc("none-model", {"ksv.io/node-selector": "region=mars"}))
    rc, _, err = fleet.ksv("apply", "-f", none)
    check(rc == 1 and "matches no registered node" in err and serving("none-model") == [],
          "a selector that matches nothing: exit 1, nothing placed (%s)" % err.strip())
    broken = write(os.path.join(work, "broken.yaml"), doc("broken", {"ksv.io/node-selector": "region=eu,,x"}))
    rc, _, err = fleet.ksv("apply", "-f", broken)
    check(rc == 1 and "broken.yaml:" in err and "node-selector" in err,
          "a malformed selector annotation: file, line and field (%s)" % err.strip())
    both = write(os.path.join(work, "both.yaml"),
                 doc("both", {"ksv.io/nodes": "n000", "ksv.io/node-selector": "region=eu"}))
    rc, _, err = fleet.ksv("apply", "-f", both)
    check(rc == 1 and "keep one" in err, "ksv.io/nodes with ksv.io/node-selector refused (%s)" % err.strip())
    rc, _, err = fleet.ksv("apply", "-f", path2, "-l", "gpu", "--node", "n000")
    check(rc == 2, "apply --node with -l: usage error (%s)" % err.strip())
    rc, _, err = fleet.ksv("node", "label", "n000", "bad key=1")
    check(rc == 2 and "label key" in err, "a key with a space: usage error (%s)" % err.strip())
    rc, _, err = fleet.ksv("node", "label", "n000", "region=\x1b[2Jeu")
    check(rc == 2 and printable(err), "an escape in a value: refused, message printable (%r)" % err.strip())
    rc, _, err = fleet.ksv("node", "label", "nosuch", "a=b")
    check(rc == 1 and "not found" in err, "an unknown node: exit 1 (%s)" % err.strip())
    rc, _, err = fleet.ksv("node", "add", "x1", "http://127.0.0.1:1", "--token-file", "/dev/null",
                           "--label", "region-")
    check(rc == 2 and "KEY=VALUE" in err, "node add --label KEY- (a removal) refused: 2 (%s)" % err.strip())
    rc, nodes = fleet.ksv_json("node", "ls")
    check(rc == 0 and len(nodes) == N, "no node was added by the refused commands")

    # ksv-top's nodes screen: labels shown, `/` with a selector filters, `L` groups.
    if shutil.which("tmux"):
        term = Tmux("ksvlabels")
        try:
            term.start([TOP, "-d", "0.5"], fleet.console_env(), cols=200, lines=40)
            term.keys("N")
            rows = lambda t: [l for l in t.splitlines() if re.match(r"^\s*n\d{3}\s", l)]
            scr = term.wait_for(lambda t: len(rows(t)) == N and " up " in t, timeout=30)
            n000 = [l for l in rows(scr) if l.strip().startswith("n000")]
            check(len(rows(scr)) == N and "LABELS" in scr and n000 and n000[0].rstrip().endswith("region=eu,tier=edge"),
                  "nodes screen: every node, a LABELS column (%s)" % n000)
            term.keys("/", "region=us,!gpu", "Enter")
            # The list filters as the selector is typed; "5 of 12" shows once Enter closed
            # the prompt, which a loaded machine may process a frame after the 5th row.
            scr = term.wait_for(lambda t: len(rows(t)) == 5 and "5 of 12" in t, timeout=10)
            names = sorted(l.split()[0] for l in rows(scr))
            check(names == US[:-1] and "5 of 12" in scr,
                  "/region=us,!gpu on the nodes screen: the 5 US nodes without a GPU (%s)" % names)
            term.keys("Escape")
            term.wait_for(lambda t: len(rows(t)) == N, timeout=10)
            term.keys("L", "L")   # the label keys sorted: gpu, then region
            # Both headers: a capture may catch the regrouped screen half drawn.
            scr = term.wait_for(lambda t: "-- region=eu (6)" in t and "-- region=us (6)" in t,
                                timeout=10)
            lines = scr.splitlines()
            heads = [l.strip() for l in lines if l.strip().startswith("-- ")]
            check(heads == ["-- region=eu (6)", "-- region=us (6)"] and "group:region" in scr,
                  "L L groups by region: two headed groups of 6 (%s)" % heads)
            first_us = next(i for i, l in enumerate(lines) if l.strip().startswith("-- region=us"))
            check(all(l.split()[0] in US for l in lines[first_us + 1:] if re.match(r"^\s*n\d{3}\s", l)),
                  "the US nodes under their header")
            term.keys("/", "a=b=c", "Enter")
            scr = term.wait_for(lambda t: "label value" in t and len(rows(t)) == N, timeout=10)
            check("label value" in scr and len(rows(scr)) == N,
                  "a malformed selector keeps every node and says why (%s)" % scr.splitlines()[:2])
        finally:
            term.kill()
finally:
    fleet.close()
finish()
