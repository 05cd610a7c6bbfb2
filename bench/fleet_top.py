#!/usr/bin/env python3
"""bench/fleet_top.py [NODES] [MODELS] [SECONDS]: what ksv-top costs watching a fleet.

Starts NODES real ksv-engine processes on 127.0.0.1 (--threads 1, http:// nodes), applies
MODELS iris models to every node, then a changed spec with canaryTrafficPercent 10 (a
canary on every model, two revisions each), sends light traffic (about 20 requests a
second in all, spread over the models and nodes), and runs ksv-top at a 1 s refresh inside
a private tmux server for SECONDS. It prints ksv-top's OWN CPU time over the window (utime
+ stime of its process, from /proc/PID/stat, so the engines' work and everything else on
this shared machine stay out of it), its RSS now and at peak (VmRSS, VmHWM) and its thread
count, and counts the nodes shown down or stale in captures of the nodes screen.

Defaults: 100 nodes, 20 models, 60 s. Run from a build:
  KSV_ENGINE=build/src/ksv-engine python3 bench/fleet_top.py 100 20 60"""
import json
import os
import re
import shutil
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from fleetnodes import Fleet  # noqa: E402
from ksvtest import DATA, TOP  # noqa: E402
from tmuxterm import Tmux  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def find_top_pid(db):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/environ" % d, "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == "ksv-top" and \
                ("KSV_DB=" + db).encode() in environ:
            return int(d)
    return None


def traffic(fleet, models, stop, rate=20.0):
    """About `rate` V2 inferences a second, round-robin over models, then nodes."""
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                                   "data": [6.8, 2.8, 4.8, 1.4]}]}).encode()
    i = 0
    while not stop.is_set():
        model = models[i % len(models)]
        node = fleet.names[(i // len(models)) % len(fleet.names)]
        try:
            req = urllib.request.Request("http://%s/v2/models/%s/infer" % (fleet.addr[node], model),
                                         data=body, headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5).read()
        except OSError:
            pass
        i += 1
        stop.wait(1.0 / rate)


def setup(n_nodes, n_models, env=None):
    fleet = Fleet(n_nodes, env=env)
    bad = fleet.register()
    if bad:
        raise RuntimeError("registering failed: %s" % bad[:3])
    models = ["m%02d" % i for i in range(n_models)]
    for name, kw in (("v1.yaml", {}), ("v2.yaml", {"model_file": "iris-ubj/model.ubj", "canary": 10})):
        path = fleet.manifest(os.path.join(fleet.work, name), models, fleet.names, **kw)
        rc, _, err = fleet.ksv("--timeout", "600", "apply", "-f", path, timeout=900)
        if rc != 0:
            raise RuntimeError("apply failed: %s" % err[-500:])
    return fleet, models


def nodes_not_up(screen):
    """Nodes the nodes screen shows down or stale."""
    return [l for l in screen.splitlines() if re.match(r"^\s*n\d{3}\s", l) and
            re.search(r"\b(down|stale)\b", l)]


def main():
    n_nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    n_models = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60
    if not shutil.which("tmux"):
        sys.exit("tmux is needed")
    t0 = time.time()
    fleet, models = setup(n_nodes, n_models)
    print("fleet ready in %.0f s" % (time.time() - t0), flush=True)
    stop = threading.Event()
    sender = threading.Thread(target=traffic, args=(fleet, models, stop), daemon=True)
    sender.start()
    term = Tmux("ksvbench")
    db = fleet.env["KSV_DB"]
    try:
        env = {"KSV_DB": db, "XDG_STATE_HOME": fleet.env["XDG_STATE_HOME"], "USER": "bench",
               "TERM": "tmux-256color", "LC_ALL": "C.UTF-8"}
        term.start([TOP, "-d", "1"], env, cols=160, lines=max(40, n_nodes * 2 + 6))
        pid = None
        deadline = time.time() + 20
        while pid is None and time.time() < deadline:
            pid = find_top_pid(db)
            time.sleep(0.2)
        if pid is None:
            sys.exit("ksv-top did not start")
        term.keys("N")
        time.sleep(10)  # warm-up: first probes, connections, sparkline seeds
        c0, w0 = proc_cpu_s(pid), time.time()
        shown_down, captures = 0, 0
        while time.time() - w0 < seconds:
            time.sleep(1)
            bad = nodes_not_up(term.screen())
            captures += 1
            shown_down += bool(bad)
        cpu, wall = proc_cpu_s(pid) - c0, time.time() - w0
        st = proc_status(pid)
        print("ksv-top watching %d nodes x %d models (canary on each, ~20 req/s), -d 1, %.0f s:"
              % (n_nodes, n_models, wall))
        print("  CPU (its own process): %.1f%% of one core (%.2f s)" % (100 * cpu / wall, cpu))
        print("  RSS: %s now, %s peak; threads: %s" % (st.get("VmRSS"), st.get("VmHWM"), st.get("Threads")))
        print("  captures with a node shown down or stale: %d of %d" % (shown_down, captures))
    finally:
        stop.set()
        term.kill()
        fleet.close()


if __name__ == "__main__":
    main()
