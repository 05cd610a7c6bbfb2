"""Storage URIs with credentials (issue 11): a model served at a presigned-style http URL
(X-Amz-Credential, X-Amz-Signature, X-Amz-Security-Token, a password in the userinfo), one
that answers 404, one 403, one whose transfer is cut and one sent slowly, pulled with
`ksv pull` and applied with `ksv apply` onto a real local node. The model loads and answers
like XGBoost, fetched from the URL as given (the server refuses a request without the
signature); and a marker unique to the run's secrets shows nowhere: not in engine.log, the
admin API's replies (models, state, pulls, events), ksv's output (pull, apply, get models,
get revisions, history, -o json), nor the history in ksv's SQLite database. The applied state
file keeps the real URI, 0600, so the engine resumes after a restart."""
import http.client
import http.server
import json
import os
import secrets
import shutil
import sqlite3
import stat
import threading
import time
import urllib.parse

from http_fixture import Handler
from ksvtest import (DATA, ENGINE, check, finish, ksv_cli, load_json, lock_pid, max_abs_diff,
                     stop_engine, tmpdir)

MARK = "SeCrEt" + secrets.token_hex(8)   # in every secret of this run, and nowhere else
SIG = MARK + "sig"
work = tmpdir("ksv-redact-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"),
           XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE, USER="tester")
node_dir = os.path.join(work, "node-a")
ksv, ksv_json = ksv_cli(env)
with open(os.path.join(DATA, "models", "fraud", "model.json"), "rb") as f:
    MODEL = f.read()
req = load_json("requests", "fraud.json")
expected = load_json("expected", "fraud.json")["data"]
gets = []
lock = threading.Lock()


class Store(Handler):
    """A presigned store: /ok/, /cut/ and /slow/model.json need X-Amz-Signature=SIG (403
    otherwise, as S3 answers a bad signature); /gone/ is 404, /denied/ 403. /cut/ sends
    half the file and closes; /slow/ sends it in a few seconds."""
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        with lock:
            gets.append(url.path)
        signed = q.get("X-Amz-Signature") == [SIG]
        if url.path == "/gone/model.json":
            return self.send(404, b"<Error><Code>NoSuchKey</Code></Error>")
        if url.path == "/denied/model.json" or not signed:
            return self.send(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
        if url.path == "/ok/model.json":
            return self.send(200, MODEL)
        self.send_response(200)
        self.send_header("Content-Length", str(len(MODEL)))
        self.end_headers()
        try:
            if url.path == "/cut/model.json":
                self.wfile.write(MODEL[:len(MODEL) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            step = len(MODEL) // 20 + 1
            for i in range(0, len(MODEL), step):  # /slow/: about 2 s
                self.wfile.write(MODEL[i:i + step])
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass
        return None


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
host = "127.0.0.1:%d" % server.server_address[1]


def presigned(path, userinfo=True):
    query = urllib.parse.urlencode([
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", "AKIA" + MARK + "/20261202/us-east-1/s3/aws4_request"),
        ("X-Amz-Date", "20261202T000000Z"), ("X-Amz-Expires", "3600"),
        ("X-Amz-SignedHeaders", "host"), ("X-Amz-Security-Token", "tok" + MARK),
        ("X-Amz-Signature", SIG)])
    auth = "reader:pw" + MARK + "@" if userinfo else ""
    return "http://%s%s%s?%s" % (auth, host, path, query)


def manifest(name, uri):
    text = ("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            "metadata:\n  name: %s\n  annotations:\n    ksv.io/nodes: \"a\"\n"
            "spec:\n  predictor:\n    model:\n      modelFormat: {name: xgboost}\n"
            "      storageUri: \"%s\"\n" % (name, uri))
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def admin(method, path, body=None):
    with open(os.path.join(node_dir, "address")) as f:
        addr = f.read().strip()
    with open(os.path.join(node_dir, "token")) as f:
        tok = f.read().strip()
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=10)
    c.request(method, path, body=None if body is None else json.dumps(body),
              headers={"Authorization": "Bearer " + tok})
    r = c.getresponse()
    text = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, text


seen = []   # (where, text) of everything a person or a program could read


def saw(where, *texts):
    for t in texts:
        seen.append((where, t if isinstance(t, str) else json.dumps(t)))


def settled(name, timeout=30):
    deadline = time.time() + timeout
    doc = {}
    while time.time() < deadline:
        st, text = admin("GET", "/ksv/v1/models/" + name)
        doc = json.loads(text) if st == 200 else {}
        revs = doc.get("revisions", [])
        if revs and revs[-1]["state"] not in ("loading",):
            return revs[-1]
        time.sleep(0.1)
    return (doc.get("revisions") or [{}])[-1]


try:
    rc, out, err = ksv("node", "add", "a", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add a local (%s)" % err.strip())
    good = manifest("fraud", presigned("/ok/model.json"))

    # Pull ahead, then apply: the model loads from the cache (same key) and answers.
    rc, out, err = ksv("pull", "-f", good)
    saw("ksv pull", out, err)
    check(rc == 0 and "pulled" in err, "ksv pull of a presigned URL (%s)" % (out + err).strip()[-300:])
    check("X-Amz-Signature=REDACTED" in err and "reader:REDACTED@" in err,
          "the pull's line names the URL with its keys, values redacted (%s)" % err.strip()[-300:])
    rc, doc = ksv_json("pull", "-f", good)
    saw("ksv pull -o json", doc)
    n_gets = gets.count("/ok/model.json")
    rc, out, err = ksv("apply", "-f", good)
    saw("ksv apply", out, err)
    check(rc == 0, "apply (%s)" % err.strip())
    r = settled("fraud")
    check(r.get("state") == "ready", "the revision is ready (%s)" % r)
    check(gets.count("/ok/model.json") == n_gets, "the apply loaded from the pull's cache entry")
    with open(os.path.join(node_dir, "address")) as f:
        addr = f.read().strip()
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=10)
    c.request("POST", "/v2/models/fraud/infer", json.dumps(req), {"Content-Type": "application/json"})
    resp = c.getresponse()
    answer = json.loads(resp.read())
    check(resp.status == 200 and max_abs_diff(answer["outputs"][0]["data"], expected) <= 1e-6,
          "the model answers like XGBoost")

    # Failures: 404, 403, a cut transfer; pulled and applied, each failing with a reason.
    for name, path, why in (("gone", "/gone/model.json", "404"),
                            ("denied", "/denied/model.json", "403"),
                            ("cut", "/cut/model.json", "")):
        m = manifest(name, presigned(path))
        rc, out, err = ksv("pull", "-f", m)
        saw("ksv pull " + name, out, err)
        check(rc != 0 and why in err and "REDACTED" in err,
              "pull %s fails with the reason and the redacted URL (%s)" % (name, err.strip()[-300:]))
        rc, out, err = ksv("--timeout", "20", "apply", "-f", m)
        saw("ksv apply " + name, out, err)
        r = settled(name)
        check(r.get("state") == "failed" and why in r.get("error", ""),
              "apply %s: the revision fails with the reason (%s)" % (name, r.get("error")))
    # A password-only URL, refused before any transfer (no model file named).
    rc, out, err = ksv("pull", "-f", manifest("nofile", "http://tok%s@%s/ok/?sig=%s" % (MARK, host, MARK)))
    saw("ksv pull nofile", out, err)
    check(rc != 0, "a URL that names no file fails (%s)" % err.strip()[-200:])

    # A slow one: progress lines while it comes, then its revision.
    slow = manifest("slow", presigned("/slow/model.json", userinfo=False))
    rc, out, err = ksv("pull", "-f", slow)
    saw("ksv pull slow", out, err)
    check(rc == 0 and "MB/s" in err, "a slow pull shows its progress (%s)" % err.strip()[-300:])

    # Everything the engine and ksv show.
    for path in ("/ksv/v1/models", "/ksv/v1/models/fraud", "/ksv/v1/models/gone",
                 "/ksv/v1/models/cut", "/ksv/v1/state", "/ksv/v1/pulls", "/ksv/v1/events"):
        st, text = admin("GET", path)
        check(st == 200, "GET %s" % path)
        saw("GET " + path, text)
    st, text = admin("POST", "/ksv/v1/pulls", {"storage_uri": presigned("/gone/model.json")})
    saw("POST /ksv/v1/pulls", text)
    time.sleep(1)
    st, text = admin("GET", "/ksv/v1/pulls")
    saw("GET /ksv/v1/pulls (after a failed one)", text)
    check("X-Amz-Credential=REDACTED" in text, "the pulls list the URL with its keys")
    for args in (("get", "models"), ("get", "models", "-o", "json"), ("get", "revisions", "fraud"),
                 ("get", "revisions", "fraud", "-o", "json"), ("get", "revisions", "gone"),
                 ("describe", "fraud"), ("describe", "cut"), ("history",),
                 ("history", "-o", "json")):
        rc, out, err = ksv(*args)
        saw("ksv " + " ".join(args), out, err)
    rc, out, err = ksv("get", "revisions", "fraud")
    check(rc == 0 and "X-Amz-Signature=REDACTED" in out, "get revisions shows the display form (%s)" % out.strip())
    db = sqlite3.connect(os.path.join(work, "ksv.db"))
    for row in db.execute("SELECT * FROM history"):
        saw("the history table", " ".join(str(v) for v in row))
    db.close()

    # The applied state keeps the real URI (the engine resumes from it), readable by its
    # user only; a restarted engine serves the model again.
    state_file = [os.path.join(node_dir, f) for f in os.listdir(node_dir) if f.endswith(".json")
                  and MARK in open(os.path.join(node_dir, f), errors="replace").read()]
    check(state_file and all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in state_file),
          "the applied state holds the real URI, mode 0600 (%s)" % state_file)
    stop_engine(node_dir)
    rc, out, err = ksv("reconcile")
    saw("ksv reconcile", out, err)
    r = settled("fraud")
    check(r.get("state") == "ready", "after a restart the model is ready again (%s)" % r)

    with open(os.path.join(node_dir, "engine.log"), errors="replace") as f:
        log = f.read()
    saw("engine.log", log)
    check("fetched" in log or "pull" in log, "engine.log speaks of the fetches")

    leaks = [(where, text[max(0, text.find(MARK) - 150):text.find(MARK) + 60])
             for where, text in seen if MARK in text]
    for where, excerpt in leaks[:12]:
        print("LEAK in %s: ...%s..." % (where, excerpt))
    check(not leaks, "the secrets show nowhere (%d of %d texts leak: %s)"
          % (len(leaks), len(seen), sorted({w for w, _ in leaks})))
    check(len(seen) > 40, "every place was read (%d texts)" % len(seen))
finally:
    stop_engine(node_dir)
    deadline = time.time() + 15
    while time.time() < deadline and lock_pid(node_dir):
        time.sleep(0.05)
    server.shutdown()
finish()
