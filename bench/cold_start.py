#!/usr/bin/env python3
"""Cold-start cost of each demo model on one ksv-engine.

For every model of data/models: serve it with min_replicas 0 and a 1 s window, and REPS
times: wait until it is scaled to zero, send one request and time it (the client's price),
then one more (warm). Also reads the engine's ksv_cold_start_duration_seconds (first
request to ready), the model's measured memory (ksv_model_memory_bytes while loaded), and
the time to read its file (a plain read, warm page cache: what the load cannot go below).
The peer: what a platform that scales to zero by stopping the server pays, measured the same
way: a fresh `ksv-engine --model NAME=FILE` process from exec to its first answer (no
container, image pull or scheduler included, so a lower bound for a pod's cold start).
Prints a Markdown table; medians of REPS.

    python3 bench/cold_start.py [--engine build/src/ksv-engine] [--reps 7]
        [--models fraud,iris] [--no-peer]
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")


class Engine:
    def __init__(self, path):
        self.dir = tempfile.mkdtemp(prefix="ksv-cold-bench-")
        self.proc = subprocess.Popen([path, "--listen", "127.0.0.1:0", "--state-dir", self.dir,
                                      "--log-level", "warn"], stderr=subprocess.DEVNULL)
        addr = os.path.join(self.dir, "address")
        deadline = time.time() + 20
        while not (os.path.exists(addr) and open(addr).read().strip()):
            if time.time() > deadline:
                sys.exit("engine did not start")
            time.sleep(0.02)
        host, port = open(addr).read().strip().rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.token = open(os.path.join(self.dir, "token")).read().strip()

    def req(self, method, path, body=None, admin=False):
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        h = {"Content-Type": "application/json"}
        if admin:
            h["Authorization"] = "Bearer " + self.token
        c.request(method, path, body=json.dumps(body) if isinstance(body, dict) else body, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, raw

    def metric(self, name, **labels):
        _, text = self.req("GET", "/metrics")
        want = sorted('%s="%s"' % kv for kv in labels.items())
        for line in text.decode().splitlines():
            m = re.match(r"^(\w+)\{([^}]*)\} (\S+)$", line)
            if m and m.group(1) == name and sorted(m.group(2).split(",")) == want:
                return float(m.group(3))
        return None

    def state(self, model):
        st, raw = self.req("GET", "/ksv/v1/models/" + model, admin=True)
        return json.loads(raw)["revisions"][0] if st == 200 else {}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def model_file(name):
    d = os.path.join(DATA, "models", name)
    return os.path.join(d, os.listdir(d)[0])


def read_seconds(path):
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass
    return time.perf_counter() - t0


def fresh_process_seconds(engine, name, body):
    """exec of a new engine serving only this model until its first 200 answer."""
    d = tempfile.mkdtemp(prefix="ksv-cold-proc-")
    t0 = time.perf_counter()
    p = subprocess.Popen([engine, "--listen", "127.0.0.1:0", "--state-dir", d, "--log-level",
                          "warn", "--model", "%s=%s" % (name, model_path(name))],
                         stderr=subprocess.DEVNULL)
    try:
        addr = os.path.join(d, "address")
        while not (os.path.exists(addr) and open(addr).read().strip()):
            time.sleep(0.001)
        host, port = open(addr).read().strip().rsplit(":", 1)
        while True:
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("POST", "/v2/models/%s/infer" % name, body=body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return time.perf_counter() - t0
            time.sleep(0.001)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default=os.environ.get("KSV_ENGINE", "build/src/ksv-engine"))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--models", help="comma-separated demo models (default: all)")
    ap.add_argument("--no-peer", action="store_true", help="skip the fresh-process peer")
    args = ap.parse_args()
    eng = Engine(args.engine)
    models = sorted(os.listdir(os.path.join(DATA, "models")))
    if args.models:
        models = [m for m in args.models.split(",") if m in models]
    print("| model | file | memory | file read | load+warm (loaded) | cold start (engine) "
          "| first request (client) | warm request | client pays | peer: fresh process |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for name in models:
            body = open(os.path.join(DATA, "requests", name + ".json")).read()
            rev = name + "-00001"
            st, raw = eng.req("PUT", "/ksv/v1/models/" + name, {
                "revisions": [{"name": rev, "runtime": "ksv-xgboost",
                               "storage_uri": model_path(name), "settings": {"min_replicas": 0}}],
                "scale_window_s": 1}, admin=True)
            if st != 202:
                sys.exit("PUT %s: %s %s" % (name, st, raw[:200]))
            firsts, warms, colds, loads, mems = [], [], [], [], []
            before = 0.0
            for _ in range(args.reps):
                deadline = time.time() + 30
                while eng.state(name).get("state") != "scaled-to-zero":
                    if time.time() > deadline:
                        sys.exit("%s did not scale to zero" % name)
                    time.sleep(0.05)
                t0 = time.perf_counter()
                st, _ = eng.req("POST", "/v2/models/%s/infer" % name, body)
                firsts.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                st2, _ = eng.req("POST", "/v2/models/%s/infer" % name, body)
                warms.append(time.perf_counter() - t0)
                if st != 200 or st2 != 200:
                    sys.exit("%s answered %s/%s" % (name, st, st2))
                total = eng.metric("ksv_cold_start_duration_seconds_sum", model=name, revision=rev)
                colds.append(total - before)
                before = total
                s = eng.state(name)
                loads.append(s["load_seconds"])
                mems.append(s["memory_bytes"])
            path = model_file(name)
            read = statistics.median(read_seconds(path) for _ in range(5))
            med = statistics.median
            fresh = (float("nan") if args.no_peer else
                     med(fresh_process_seconds(args.engine, name, body) for _ in range(args.reps)))
            print("| %s | %.0f KiB | %.0f KiB | %.2f ms | %.1f ms | %.1f ms | %.1f ms | %.2f ms "
                  "| +%.1f ms | %.1f ms |"
                  % (name, os.path.getsize(path) / 1024, med(mems) / 1024, read * 1e3,
                     med(loads) * 1e3, med(colds) * 1e3, med(firsts) * 1e3, med(warms) * 1e3,
                     (med(firsts) - med(warms)) * 1e3, fresh * 1e3))
            eng.req("DELETE", "/ksv/v1/models/" + name, admin=True)
    finally:
        eng.stop()


def model_path(name):
    return os.path.join(DATA, "models", name)


if __name__ == "__main__":
    main()
