"""ksv.io/fetch (issue 16): over SSH an edge node fetches a model from its store itself by
default; with `ksv.io/fetch: operator` ksv fetches it on the operator's side and sends it by
SFTP. The edge is a real sshd on loopback (tests/sshnode.py) whose engine cannot reach the
store: it is started through a wrapper that points http_proxy at a closed port, so only the
operator (ksv here, no proxy) can reach the store, a real HTTP server on 127.0.0.1."""
import hashlib
import http.client
import http.server
import json
import os
import re
import threading

from ksvtest import (ENGINE, check, finish, free_port, ksv_cli, load_json, max_abs_diff,
                     model_path, stop_engine, tmpdir)
from sshnode import SshNode, skip_unless_available

skip_unless_available()

work = tmpdir("ksv-fetch-ssh-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), HOME=work, USER="tester",
           XDG_STATE_HOME=os.path.join(work, "state"), XDG_CONFIG_HOME=os.path.join(work, "cfg"),
           XDG_CACHE_HOME=os.path.join(work, "cache"), KSV_ENGINE=ENGINE)
for k in ("SSH_AUTH_SOCK", "KSV_CONFIG", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
    env.pop(k, None)
ksv, ksv_json = ksv_cli(env, timeout=180)
box = SshNode(work)
engine_dir = os.path.join(work, "edge-engine")
engine_port = free_port()
dead_proxy = free_port()
with open(os.path.join(model_path("fraud"), "model.json"), "rb") as f:
    MODEL = f.read()
SHA = hashlib.sha256(MODEL).hexdigest()
BODY = json.dumps(load_json("requests", "fraud.json"))
WANT = load_json("expected", "fraud.json")["data"]
gets = []


class Store(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        gets.append(self.path)
        ok = self.path == "/m/model.json"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(MODEL) if ok else 4))
        self.end_headers()
        self.wfile.write(MODEL if ok else b"nope")


store = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
threading.Thread(target=store.serve_forever, daemon=True).start()
uri = "http://127.0.0.1:%d/m/model.json" % store.server_address[1]

# The edge's engine, as sshd starts it, sends its model fetches to a proxy that is not there.
wrapper = os.path.join(work, "edge-engine.sh")
with open(wrapper, "w") as f:
    f.write("#!/bin/sh\nhttp_proxy=http://127.0.0.1:%d\nexport http_proxy\nexec %s \"$@\"\n"
            % (dead_proxy, ENGINE))
os.chmod(wrapper, 0o755)


def manifest(name, storage_uri, fetch=None):
    ann = "    ksv.io/nodes: edge\n    ksv.io/sha256: \"%s\"\n" % SHA
    if fetch:
        ann += "    ksv.io/fetch: %s\n" % fetch
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as f:
        f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                "metadata:\n  name: %s\n  annotations:\n%s"
                "spec:\n  predictor:\n    model:\n      modelFormat: {name: xgboost}\n"
                "      storageUri: %s\n" % (name, ann, storage_uri))
    return path


def edge(method, path, body=None, admin=True):
    with open(os.path.join(engine_dir, "token")) as f:
        token = f.read().strip()
    c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=10)
    h = {"Authorization": "Bearer " + token} if admin else {"Content-Type": "application/json"}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    text = r.read()
    c.close()
    return r.status, json.loads(text) if text else None


try:
    check(box.start(), "sshd is up")
    rc, out, err = ksv("node", "add", "edge", box.address, "--trust-new",
                       *box.node_args(wrapper, engine_dir, engine_port))
    check(rc == 0, "edge added over SSH, its engine behind a dead proxy (%s)" % err.strip())

    # Default: the edge fetches for itself, and here it cannot.
    rc, out, err = ksv("--timeout", "20", "apply", "-f", manifest("byedge", uri))
    st, m = edge("GET", "/ksv/v1/models/byedge")
    rev = m["revisions"][0] if st == 200 else {}
    check(rc == 1 and rev.get("state") == "failed" and uri in rev.get("error", "") and
          str(dead_proxy) in rev.get("error", ""),
          "by default the edge's engine fetches the URI itself (here through its dead proxy: %s)"
          % rev.get("error"))
    check(gets == [], "and the store saw no request (%s)" % gets)

    # ksv.io/fetch: operator: ksv fetches here and sends the file by SFTP.
    rc, out, err = ksv("apply", "-f", manifest("byop", uri, "operator"))
    check(rc == 0, "ksv.io/fetch: operator: applied (%s)" % (err.strip() or out.strip())[-300:])
    check(gets == ["/m/model.json"], "the store served one GET, to the operator's side (%s)" % gets)
    check("uploaded" in err, "the upload's progress is shown (%s)" % err.strip()[-200:])
    st, m = edge("GET", "/ksv/v1/models/byop")
    rev = m["revisions"][0] if st == 200 else {}
    sent = rev.get("spec", {}).get("storage_uri", "")
    check(rev.get("state") == "ready" and sent.startswith(os.path.join(engine_dir, "models")),
          "the edge serves the file sent into its state dir (%s %s)" % (rev.get("state"), sent))
    st, resp = edge("POST", "/v2/models/byop/infer", BODY, admin=False)
    check(st == 200 and max_abs_diff(resp["outputs"][0]["data"], WANT) < 1e-5,
          "and answers with XGBoost's prediction")
    blobs = os.path.join(env["XDG_CACHE_HOME"], "ksv", "operator-fetch", "cache", "blobs")
    check(SHA in os.listdir(blobs), "the operator's copy is cached under its sha256")
    rc, out, err = ksv("reconcile", "byop")
    check(rc == 0 and gets == ["/m/model.json"],
          "pushing it again fetches nothing (the operator's cache) (%s)" % gets)

    # ksv pull of such a model: fetched here (the operator's cache has it) and sent by SFTP;
    # the edge's own engine is never asked to reach the store.
    rc, out, err = ksv("pull", "byop")
    check(rc == 0 and re.search(r"node edge: %s: pulled 0\.5 MB" % re.escape(uri), err) and
          gets == ["/m/model.json"], "ksv pull of an operator-fetched model sends it by SFTP (%s)"
          % (out + err).strip()[-300:])
    st, pulls = edge("GET", "/ksv/v1/pulls")
    check(st == 200 and pulls["pulls"] == [], "and the edge's engine was asked to pull nothing")
    rc, out, err = ksv("pull", "byedge")
    check(rc == 1 and str(dead_proxy) in out + err,
          "ksv pull of a model the edge fetches itself: the edge's engine pulls, and here cannot (%s)"
          % (out + err).strip()[-200:])

    # A failed fetch on the operator's side fails the model, naming why.
    rc, out, err = ksv("--timeout", "20", "apply", "-f",
                       manifest("gone", uri.replace("/m/", "/none/"), "operator"))
    check(rc == 1 and "fetching on the operator's side" in out + err and "HTTP 404" in out + err,
          "a store's 404 on the operator's side fails the apply, naming it (%s)"
          % (out + err).strip()[-300:])
finally:
    stop_engine(engine_dir)
    box.stop()
    store.shutdown()
finish()
