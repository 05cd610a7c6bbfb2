"""fleetnodes: a fleet of real ksv-engine processes on 127.0.0.1 registered as ksv nodes,
for the fleet tests and bench/fleet.sh.

Engines start side by side (--threads 1: the machine has two cores and the fleet is many
small edge boxes), each with its own state dir, and are registered as http:// nodes with
their token files, so nothing but ksv itself talks to them."""
import http.client
import json
import os
import signal
import subprocess
import time

from ksvtest import ksv_cli, DATA, ENGINE, _procs, tmpdir


class Fleet:
    def __init__(self, n, work=None, env=None, threads=1, prefix="n"):
        self.work = work or tmpdir("ksv-fleet-")
        self.env = dict(os.environ, KSV_DB=os.path.join(self.work, "ksv.db"),
                        XDG_STATE_HOME=os.path.join(self.work, "state"), KSV_ENGINE=ENGINE,
                        USER="tester", **(env or {}))
        self.names = ["%s%03d" % (prefix, i) for i in range(n)]
        self.dirs = {}
        self.procs = {}
        self.addr = {}
        self.token = {}
        for name in self.names:
            d = os.path.join(self.work, "engine-" + name)
            os.makedirs(d, mode=0o700)
            log = open(os.path.join(d, "engine.log"), "ab")
            p = subprocess.Popen([ENGINE, "--listen", "127.0.0.1:0", "--state-dir", d, "--threads",
                                  str(threads), "--log-level", "warn"], stdout=log, stderr=log)
            _procs.append(p)
            self.dirs[name], self.procs[name] = d, p
        deadline = time.time() + 60
        for name in self.names:
            path = os.path.join(self.dirs[name], "address")
            while not (os.path.exists(path) and open(path).read().strip()):
                if self.procs[name].poll() is not None or time.time() > deadline:
                    raise RuntimeError("engine %s did not start" % name)
                time.sleep(0.02)
            self.addr[name] = open(path).read().strip()
            self.token[name] = open(os.path.join(self.dirs[name], "token")).read().strip()

    def ksv(self, *args, timeout=300):
        return ksv_cli(self.env)[0](*args, timeout=timeout)

    def ksv_json(self, *args, timeout=300):
        return ksv_cli(self.env)[1](*args, timeout=timeout)

    def register(self, extra=()):
        """Registers every engine as an http:// node; returns the names that failed."""
        bad = []
        for name in self.names:
            rc, _, err = self.ksv("node", "add", name, "http://" + self.addr[name], "--token-file",
                                  os.path.join(self.dirs[name], "token"), *extra)
            if rc != 0:
                bad.append((name, err.strip()))
        return bad

    def manifest(self, path, models, nodes, model_file="iris/model.json", annotations=None, canary=None):
        """Writes one document per model name (all placed on nodes) and returns path."""
        docs = []
        for m in models:
            ann = {"ksv.io/nodes": ",".join(nodes)}
            ann.update(annotations or {})
            lines = ["apiVersion: serving.kserve.io/v1beta1", "kind: InferenceService",
                     "metadata:", "  name: " + m, "  annotations:"]
            lines += ['    %s: "%s"' % (k, v) for k, v in ann.items()]
            lines += ["spec:", "  predictor:"]
            if canary is not None:
                lines.append("    canaryTrafficPercent: %d" % canary)
            lines += ["    model:", "      modelFormat:", "        name: xgboost",
                      "      storageUri: %s/models/%s" % (DATA, model_file)]
            docs.append("\n".join(lines) + "\n")
        with open(path, "w") as f:
            f.write("---\n".join(docs))
        return path

    def console_env(self):
        """The environment ksv-top runs in, inside tmux, to watch this fleet."""
        return {"KSV_DB": self.env["KSV_DB"], "XDG_STATE_HOME": self.env["XDG_STATE_HOME"],
                "USER": "tester", "TERM": "tmux-256color", "LC_ALL": "C.UTF-8"}

    def admin(self, name, method, path, body=None, timeout=10):
        host, port = self.addr[name].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            c.request(method, path, body=body,
                      headers={"Authorization": "Bearer " + self.token[name]})
            r = c.getresponse()
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
        finally:
            c.close()

    def write(self, name, text):
        """A file in the fleet's work dir; returns its path."""
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def serving(self, model):
        """Each engine's effective split of model (None where it has none)."""
        return {n: (self.model_state(n, model) or {}).get("effective_traffic") for n in self.names}

    def model_state(self, name, model):
        st, body = self.admin(name, "GET", "/ksv/v1/models/" + model)
        return body if st == 200 else None

    def events(self, name):
        """The engine's own event log (GET /ksv/v1/events, the admin token), oldest first."""
        st, body = self.admin(name, "GET", "/ksv/v1/events?since=0&limit=5000")
        return body.get("events", []) if st == 200 and body else []

    def stop(self, name):
        os.kill(self.procs[name].pid, signal.SIGSTOP)

    def cont(self, name):
        os.kill(self.procs[name].pid, signal.SIGCONT)

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except OSError:
                    pass
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
