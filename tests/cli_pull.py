"""`ksv pull` (issue 16): models fetched into two real local nodes' caches ahead of a
rollout, from a real HTTP server on 127.0.0.1 that sends them at a set pace, with progress
per node (bytes/total and rate) on ksv's stderr and in the engines' GET /ksv/v1/pulls; the
apply that follows loads from the cache without asking the server again; `ksv pull MODEL`
of a stored model finds it cached; a revision still downloading shows its progress in
the state JSON (what ksv-top reads); failures name the URI and the status; the engine
refuses hostile pull bodies with 400 and keeps serving."""
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
import http.server

from ksvtest import (DATA, KSV, TOP, ksv_cli, ENGINE, check, finish, lock_pid, sanitizer_env,
                     sanitizer_reports, stop_engine, tmpdir)
from tmuxterm import Tmux

PACE = 150 * 1024             # bytes per second the server sends a model at
work = tmpdir("ksv-pull-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=ENGINE, USER="tester")
node_dirs = {n: os.path.join(work, "node-" + n) for n in ("a", "b")}
ksv, ksv_json = ksv_cli(env)

www = tmpdir("ksv-pull-www-")
os.makedirs(os.path.join(www, "m"))
shutil.copy(os.path.join(DATA, "models", "fraud", "model.json"), os.path.join(www, "m", "model.json"))
with open(os.path.join(www, "m", "model.json"), "rb") as f:
    MODEL = f.read()
SHA = hashlib.sha256(MODEL).hexdigest()
gets = {}
lock = threading.Lock()


class Paced(http.server.BaseHTTPRequestHandler):
    """GET /m/model.json (also /slow/model.json, at a tenth of the pace): the file, sent at
    PACE bytes/s; anything else 404."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        with lock:
            gets[self.path] = gets.get(self.path, 0) + 1
        path = self.path.split("?")[0]
        if path not in ("/m/model.json", "/slow/model.json"):
            self.send_response(404)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"nope")
            return
        pace = PACE if path.startswith("/m/") else PACE // 10
        self.send_response(200)
        self.send_header("Content-Length", str(len(MODEL)))
        self.end_headers()
        step = pace // 10
        try:
            for i in range(0, len(MODEL), step):
                self.wfile.write(MODEL[i:i + step])
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Paced)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]


def admin(node, method, path, body=None, token=True):
    d = node_dirs[node]
    with open(os.path.join(d, "address")) as f:
        addr = f.read().strip()
    with open(os.path.join(d, "token")) as f:
        tok = f.read().strip()
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=10)
    h = {"Authorization": "Bearer " + tok} if token else {}
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    text = r.read()
    c.close()
    try:
        return r.status, json.loads(text)
    except ValueError:
        return r.status, text


def manifest(name, uri, nodes="a,b", sha=SHA):
    text = ("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            "metadata:\n  name: %s\n  annotations:\n    ksv.io/nodes: \"%s\"\n" % (name, nodes))
    if sha:
        text += "    ksv.io/sha256: \"%s\"\n" % sha
    text += ("spec:\n  predictor:\n    model:\n      modelFormat: {name: xgboost}\n"
             "      storageUri: %s\n" % uri)
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


try:
    for n in ("a", "b"):
        rc, out, err = ksv("node", "add", n, "local", "--engine-state-dir", node_dirs[n])
        check(rc == 0, "node add %s local (%s)" % (n, err.strip()))
    uri = base + "/m/model.json"
    fraud = manifest("fraud", uri)

    # Usage errors.
    check(ksv("pull")[0] == 2, "pull without MODEL or -f: exit 2")
    check(ksv("pull", "fraud", "-f", fraud)[0] == 2, "pull with both MODEL and -f: exit 2")
    check(ksv("pull", "-f", fraud, "--pull-timeout", "0")[0] == 2, "--pull-timeout 0: exit 2")
    rc, out, _ = ksv("--help")
    check(rc == 0 and "pull MODEL | -f FILE" in out, "--help lists pull")

    # Pull ahead of the rollout: both nodes fetch, each reporting its progress.
    t0 = time.time()
    rc, out, err = ksv("pull", "-f", fraud)
    took = time.time() - t0
    print(err)
    check(rc == 0, "pull -f succeeds (%s)" % (out + err).strip()[-300:])
    total_mb = "%.1f" % (len(MODEL) / 1e6)
    for n in ("a", "b"):
        moving = re.findall(r"node %s: %s: ([0-9.]+)/%s MB \(([0-9.]+) MB/s\)" % (n, re.escape(uri), total_mb), err)
        check(any(float(done) < float(total_mb) for done, _ in moving),
              "node %s: a progress line with bytes/total and rate while it pulls (%s)" % (n, moving[:3]))
        check(re.search(r"node %s: %s: pulled %s MB in [0-9.]+ s \([0-9.]+ MB/s\)" % (n, re.escape(uri), total_mb), err),
              "node %s: the line that says it is done" % n)
    check(took >= len(MODEL) / PACE * 0.8, "the pull took as long as the server's pace (%.1f s)" % took)
    check(gets.get("/m/model.json") == 2, "one GET per node (%s)" % gets)
    rc, doc = ksv_json("pull", "-f", fraud)
    check(rc == 0 and doc.get("ok") and len(doc.get("nodes", [])) == 2, "-o json reports each node (%s)" % doc)
    check(gets.get("/m/model.json") == 2, "pulling again is served from the cache: no GET (%s)" % gets)

    # The engines' own view: GET /ksv/v1/pulls and the state's "pulls".
    st, doc = admin("a", "GET", "/ksv/v1/pulls")
    done = [p for p in doc.get("pulls", []) if p["storage_uri"] == uri and p["state"] == "done"]
    check(st == 200 and done and done[0]["progress"]["bytes"] == len(MODEL) and
          done[0]["progress"]["total"] == len(MODEL) and done[0]["model"] == "default/fraud" and
          done[0]["sha256"] == SHA,
          "GET /ksv/v1/pulls: done, bytes == total == the file's size, model and sha256 (%s)" % doc)
    rate = done[0]["progress"]["bytes_per_s"] if done else 0
    check(0 < rate < PACE * 2, "the first pull's rate is the server's pace (%.0f B/s)" % rate)
    st, state = admin("a", "GET", "/ksv/v1/state")
    check(st == 200 and any(p["storage_uri"] == uri for p in state.get("pulls", [])), "the state lists the pulls")

    # The rollout that follows loads from the cache: the server is not asked again.
    rc, out, err = ksv("apply", "-f", fraud)
    check(rc == 0, "apply after the pull (%s)" % err.strip())
    check(gets.get("/m/model.json") == 2, "the apply loaded both nodes from the cache (%s)" % gets)
    st, m = admin("b", "GET", "/ksv/v1/models/fraud")
    check(st == 200 and m["revisions"][0]["state"] == "ready", "node b serves the pulled model")
    rc, out, err = ksv("pull", "fraud")
    check(rc == 0 and "pulled" in err and gets.get("/m/model.json") == 2,
          "ksv pull MODEL: the stored model's revision, already cached (%s)" % err.strip())
    rc, out, err = ksv("pull", "fraud", "--node", "a")
    check(rc == 0 and "node a:" in err and "node b:" not in err, "--node picks the nodes")

    # Failures name the URI and the status; a local path has nothing to pull.
    missing = manifest("gone", base + "/nothing/model.json", nodes="a", sha=None)
    rc, out, err = ksv("pull", "-f", missing)
    check(rc == 1 and "HTTP 404" in out + err and "/nothing/model.json" in out + err,
          "a missing object fails the pull with the URI and 404 (%s)" % (out + err).strip()[-200:])
    local = manifest("local", os.path.join(DATA, "models", "churn-v1", "model.json"), nodes="a", sha=None)
    rc, out, err = ksv("pull", "-f", local)
    check(rc == 1 and "nothing to pull" in err, "a local path: nothing to pull (%s)" % err.strip())
    check(ksv("pull", "nosuch")[0] == 1, "an unknown MODEL: exit 1")

    # A revision's own download shows its progress in the state (ksv-top reads it there).
    slow = base + "/slow/model.json"
    st, _ = admin("a", "PUT", "/ksv/v1/models/slow", {"revisions": [{"name": "slow-00001", "storage_uri": slow}]})
    seen = None
    deadline = time.time() + 10
    while time.time() < deadline and not seen:
        st, m = admin("a", "GET", "/ksv/v1/models/slow")
        dl = m["revisions"][0].get("download") if st == 200 else None
        if dl and 0 < dl["bytes"] < dl["total"] == len(MODEL) and dl["bytes_per_s"] > 0:
            seen = dl
        time.sleep(0.2)
    check(seen is not None, "a loading revision's state has download bytes/total/rate (%s)" % seen)
    st, _ = admin("a", "DELETE", "/ksv/v1/models/slow")

    # ksv-top: the model's detail screen shows a pull of it running on a node, and a
    # revision whose model is still downloading shows "fetching" with bytes/total and rate.
    if shutil.which("tmux"):
        term = Tmux("ksvpull")
        try:
            term.start([TOP, "-d", "0.5"], {k: env[k] for k in ("KSV_DB", "XDG_STATE_HOME", "USER")}
                       | {"LC_ALL": "C.UTF-8", "TERM": "tmux-256color"} | sanitizer_env(work),
                       cols=140, lines=40)
            term.wait_for(lambda t: "fraud" in t)
            term.keys("Enter")
            term.wait_for(lambda t: "STABLE" in t)
            slow_pull = manifest("fraud", base + "/slow/model.json?for=pull", nodes="a", sha=None)
            bg = subprocess.Popen([KSV, "pull", "-f", slow_pull], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # The query's value is redacted (issue 11): any may be a presigned URL's secret.
            text = term.wait_for(lambda t: re.search(r"node a: \S*/slow/model.json\?for=REDACTED "
                                                     r"[0-9.]+/0\.5 MB \([0-9.]+ MB/s\) pulling", t))
            check("PULLS" in text and re.search(r"/slow/model.json\?for=REDACTED [0-9.]+/0\.5 MB", text),
                  "ksv-top's detail screen shows the model's pull with bytes/total and rate:\n" + text)
            bg.kill()
            bg.wait()
            slow_apply = manifest("fraud", base + "/slow/model.json?for=apply", nodes="a", sha=None)
            ksv("--timeout", "1", "apply", "-f", slow_apply)
            text = term.wait_for(lambda t: re.search(r"fetching [0-9.]+/0\.5 MB \([0-9.]+ MB/s\)", t))
            check(re.search(r"fetching [0-9.]+/0\.5 MB \([0-9.]+ MB/s\)", text),
                  "ksv-top shows the downloading revision's bytes/total and rate:\n" + text)
        finally:
            term.kill()
        check(not sanitizer_reports(work), "ksv-top: no sanitizer report")

    # Hostile pull bodies: 400 each, and the engine goes on.
    hostile = [b"", b"{", b"[]", b"\"x\"", b"{}", json.dumps({"storage_uri": 7}),
               json.dumps({"storage_uri": "/srv/m.json"}), json.dumps({"storage_uri": "file:///srv/m.json"}),
               json.dumps({"storage_uri": "ftp://h/m.json"}), json.dumps({"storage_uri": "s3://"}),
               json.dumps({"storage_uri": "http://h/m .json"}), json.dumps({"storage_uri": "http://h/\u001b[2J"}),
               json.dumps({"storage_uri": "http://h/" + "a" * 3000}),
               json.dumps({"storage_uri": uri, "sha256": "xyz"}),
               json.dumps({"storage_uri": uri, "sha256": "g" * 64}),
               json.dumps({"storage_uri": uri, "model": "a\nb"}),
               json.dumps({"storage_uri": uri, "model": "m" * 300}),
               json.dumps({"storage_uri": uri, "extra": 1}),
               json.dumps({"storage_uri": uri, "sha256": None}),
               b"{\"storage_uri\":\"" + uri.encode() + b"\"} trailing",
               b"{\"storage_uri\":\"http://h/\\u0000x\"}"]
    codes = [admin("a", "POST", "/ksv/v1/pulls", b)[0] for b in hostile]
    check(all(c == 400 for c in codes), "every hostile pull body is refused with 400 (%s)" % codes)
    check(admin("a", "POST", "/ksv/v1/pulls", {"storage_uri": uri}, token=False)[0] == 401, "no token: 401")
    check(admin("a", "PUT", "/ksv/v1/pulls", {"storage_uri": uri})[0] == 405, "PUT: 405")
    # More pulls than the engine keeps (64): finished ones make room, oldest first, while
    # their fetch threads are still reporting (ASan once caught a record freed there).
    for i in range(80):
        admin("a", "POST", "/ksv/v1/pulls", {"storage_uri": base + "/none/%d/model.json" % i})
    deadline = time.time() + 20
    doc = {}
    while time.time() < deadline:
        st, doc = admin("a", "GET", "/ksv/v1/pulls")
        if st == 200 and all(p["state"] == "failed" for p in doc["pulls"][-16:]):
            break
        time.sleep(0.2)
    ids = [p["id"] for p in doc.get("pulls", [])]
    check(st == 200 and len(ids) == 64 and ids == sorted(ids) and "/none/79/" in doc["pulls"][-1]["storage_uri"],
          "the engine keeps the newest 64 pulls, oldest first (%d kept)" % len(ids))
finally:
    for d in node_dirs.values():
        stop_engine(d)
    deadline = time.time() + 15
    while time.time() < deadline and any(lock_pid(d) for d in node_dirs.values()):
        time.sleep(0.05)
    server.shutdown()
finish()
