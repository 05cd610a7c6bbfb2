"""Range resume for http(s)://, gs:// and hf:// downloads (issue 16): a real HTTP server on
127.0.0.1 (Python's, laid out as a plain file server, Cloud Storage's JSON API and the
Hugging Face Hub's resolve URLs) drops the connection in the middle of a model; the engine
asks only for the rest (Range, with If-Range naming the version the bytes came from) and
serves the model, checked byte for byte. A transfer whose store then answers 503 keeps
its bytes for the next try, which resumes; an object that changed in between comes whole
(If-Range), and a store that ignores If-Range and splices two versions is caught by the
sha256 check."""
import hashlib
import http.server
import os
import subprocess
import threading
import urllib.parse

from http_fixture import Handler
from ksvtest import DATA, ENGINE, Engine, check, finish, load_json, max_abs_diff, tmpdir


def read(name):
    with open(os.path.join(DATA, "models", name, "model.json"), "rb") as f:
        return f.read()


fraud, churn2 = read("fraud"), read("churn-v2")
commit = hashlib.sha1(b"resume").hexdigest()
# path -> content; the Hub's resolve URL redirects to /cdn/COMMIT/FILE as the Hub does.
objects = {"/files/model.json": fraud, "/again/model.json": fraud, "/changed/model.json": fraud,
           "/liar/model.json": fraud, "/weak/model.json": fraud, "/gcs/models/fraud/model.json": fraud,
           "/cdn/%s/model.json" % commit: fraud,
           # Past the HTTP client's 64 MiB default reply cap, which every download once hit.
           "/large/model.json": os.urandom(70 << 20)}
plans = {}                       # path -> list of actions for its next GETs: ("cut", N) | 503
gets = []                        # (path, range header, if-range header)
lock = threading.Lock()


def etag(body):
    return '"%s"' % hashlib.sha256(body).hexdigest()[:16]


class Store(Handler):
    def media(self, path):
        body = objects[path]
        rng, cond = self.headers.get("Range"), self.headers.get("If-Range")
        with lock:
            gets.append((path, rng, cond))
            action = plans[path].pop(0) if plans.get(path) else None
        if action == 503:
            return self.send(503, b"try later")
        start = 0
        # /liar/ honours Range whatever If-Range says (a broken store).
        if rng and (cond is None or cond == etag(body) or path.startswith("/liar/")):
            start = int(rng.split("=")[1].rstrip("-"))
        part = body[start:]
        self.send_response(206 if start else 200)
        if path.startswith("/weak/"):
            # Nothing a resume may trust: a weak ETag, a Last-Modified with a control
            # character, and an overlong one after it.
            self.send_header("ETag", 'W/"weak"')
            self.send_header("Last-Modified", "Tue, 01 Dec 2026\x01 10:00:00 GMT")
            self.send_header("Last-Modified", "x" * 400)
        else:
            self.send_header("ETag", etag(body))
        self.send_header("Content-Length", str(len(part)))
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
        self.end_headers()
        if isinstance(action, tuple):  # ("cut", N): N bytes of the body, then the line drops
            self.wfile.write(part[:action[1]])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(part)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.split("/")
        if u.path.startswith("/storage/v1/b/models/o"):
            if len(parts) == 6:  # the listing
                return self.send(200, (b'{"items":[{"name":"fraud/model.json","size":"%d"}]}' % len(fraud)))
            return self.media("/gcs/models/" + urllib.parse.unquote(parts[6]))
        if u.path.startswith("/api/models/org/repo/revision/"):
            return self.send(200, b'{"sha":"%s","siblings":[{"rfilename":"model.json"}]}' % commit.encode())
        if u.path == "/org/repo/resolve/%s/model.json" % commit:
            return self.send(302, b"", [("Location", "/cdn/%s/model.json" % commit)])
        if u.path in objects:
            return self.media(u.path)
        self.send(404, b"not here")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]
req = load_json("requests", "fraud.json")
expected = load_json("expected", "fraud.json")["data"]
eng = Engine("--fetch-stall", "5", log_level="info",
             extra_env={"STORAGE_EMULATOR_HOST": base, "HF_ENDPOINT": base})
partial_dir = os.path.join(eng.state_dir, "cache", "partial")
blobs = os.path.join(eng.state_dir, "cache", "blobs")


def put(name, uri, sha=None):
    rev = {"name": name + "-00001", "storage_uri": uri}
    if sha:
        rev["sha256"] = sha
    return eng.request("PUT", "/ksv/v1/models/" + name, {"revisions": [rev]}, admin=True)[0]


def answers(name):
    st, _, resp = eng.request("POST", "/v2/models/%s/infer" % name, req)
    return st == 200 and max_abs_diff(resp["outputs"][0]["data"], expected) <= 1e-6


def gets_of(path):
    with lock:
        return [g for g in gets if g[0] == path]


# Cut mid-transfer, then served: one fetch, two GETs, the second for the rest only.
for name, uri, path, cut in [("plain", base + "/files/model.json", "/files/model.json", 150000),
                             ("gs", "gs://models/fraud/model.json", "/gcs/models/fraud/model.json", 200000),
                             ("hf", "hf://org/repo/model.json", "/cdn/%s/model.json" % commit, 250000)]:
    plans[path] = [("cut", cut)]
    check(put(name, uri, hashlib.sha256(fraud).hexdigest()) == 202, "PUT " + uri)
    r = eng.revision_settled(name)
    seen = gets_of(path)
    check(r["state"] == "ready" and answers(name),
          "%s: cut after %d bytes, resumed, loaded, answers like XGBoost (%s %s)" % (uri, cut, r["state"], r.get("error", "")))
    check(len(seen) == 2 and seen[0][1] is None and seen[1][1] == "bytes=%d-" % cut,
          "%s: the second GET asked only for the rest, Range: bytes=%d- (%s)" % (uri, cut, seen))
    if name == "plain":
        check(seen[1][2] == etag(fraud), "plain http: with If-Range naming the version the bytes came from")
check(hashlib.sha256(fraud).hexdigest() in os.listdir(blobs), "the resumed file is the model, byte for byte")
check("resuming from there" in eng.log_text(), "the engine log says it resumed")
check([f for f in os.listdir(partial_dir)] == [], "no partial file is left once complete")

# The store fails (503) after the cut: the bytes stay, and the next try resumes from them.
path = "/again/model.json"
plans[path] = [("cut", 100000)] + [503] * 10
put("again", base + path)
r = eng.revision_settled("again")
kept = {f: os.path.getsize(os.path.join(partial_dir, f)) for f in os.listdir(partial_dir)}
check(r["state"] == "failed" and "HTTP 503" in r.get("error", "") and path in r.get("error", ""),
      "a store that answers 503 after the cut fails the revision, naming the URI and status (%s)" % r.get("error"))
check(sorted(kept.values())[-1] == 100000 and any(f.endswith(".v") for f in kept),
      "the 100000 bytes are kept, with the version they are a prefix of (%s)" % kept)
plans[path] = []
before = len(gets_of(path))
put("again", base + path)  # the same spec again retries
r = eng.revision_settled("again")
seen = gets_of(path)[before:]
check(r["state"] == "ready" and answers("again") and len(seen) == 1 and seen[0][1] == "bytes=100000-" and
      seen[0][2] == etag(fraud), "the next try asked for the rest only, If-Range set, and serves (%s)" % seen)

# Validators a resume cannot trust are ignored. Without a listed size or a validator,
# nothing says what the bytes are a prefix of: no resume, in the same fetch or a later one.
path = "/weak/model.json"
plans[path] = [("cut", 100000), ("cut", 50000)] + [503] * 10
put("weak", base + path)
r = eng.revision_settled("weak")
seen = gets_of(path)
check(r["state"] == "failed" and len(seen) == 1,
      "no validator: no resume at all, the first try fails (%s %s)" % (r["state"], seen))
check(os.listdir(partial_dir) == [], "and no bytes are kept (%s)" % os.listdir(partial_dir))
plans[path] = []
put("weak", base + path)
r = eng.revision_settled("weak")
seen = gets_of(path)
check(r["state"] == "ready" and seen[-1][1] is None and seen[-1][2] is None,
      "the next try starts from the first byte, without Range or If-Range (%s)" % seen[-1:])

# The object changed between the tries: If-Range gets the whole new one, not a splice.
path = "/changed/model.json"
plans[path] = [("cut", 100000)] + [503] * 10
put("changed", base + path, hashlib.sha256(churn2).hexdigest())
r = eng.revision_settled("changed")
check(r["state"] == "failed", "changed: the first try fails after the cut")
objects[path] = churn2
plans[path] = []
put("changed", base + path, hashlib.sha256(churn2).hexdigest())
r = eng.revision_settled("changed")
check(r["state"] == "ready" and hashlib.sha256(churn2).hexdigest() in os.listdir(blobs),
      "the changed object came whole (If-Range did not match) and passed its sha256 (%s %s)" % (r["state"], r.get("error", "")))

# A store that ignores If-Range splices two versions: the sha256 check refuses the result.
path = "/liar/model.json"
plans[path] = [("cut", 100000)] + [503] * 10
put("liar", base + path, hashlib.sha256(fraud).hexdigest())
eng.revision_settled("liar")
objects[path] = churn2
plans[path] = []
put("liar", base + path, hashlib.sha256(fraud).hexdigest())
r = eng.revision_settled("liar")
check(r["state"] == "failed" and "sha256" in r.get("error", ""),
      "a spliced file fails its sha256 check (%s)" % r.get("error"))
check(eng.stop() == 0, "SIGTERM: exit 0")

# A 70 MiB model, cut at 40 MiB: `ksv-engine --fetch` (what ksv runs for ksv.io/fetch:
# operator) resumes it and prints the cached file, byte for byte the object.
path = "/large/model.json"
plans[path] = [("cut", 40 << 20)]
large = objects[path]
r = subprocess.run([ENGINE, "--fetch", base + path, "--sha256", hashlib.sha256(large).hexdigest(),
                    "--state-dir", tmpdir("ksv-fetch-once-"), "--log-level", "warn"],
                   capture_output=True, text=True, timeout=120)
got = r.stdout.strip()
same = r.returncode == 0 and os.path.isfile(got) and os.path.getsize(got) == len(large)
if same:
    with open(got, "rb") as f:
        same = hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(large).hexdigest()
seen = gets_of(path)
check(same and len(seen) == 2 and seen[1][1] == "bytes=%d-" % (40 << 20),
      "a 70 MiB model cut at 40 MiB: fetched whole, the rest asked with Range (%s %s %s)"
      % (r.returncode, r.stderr.strip()[-200:], [g[1] for g in seen]))

# Two at once on one state dir take turns (opening the cache empties its staging folder):
# both print the same file, fetched once. Beside an engine serving from it: refused.
shared = tmpdir("ksv-fetch-twice-")
argv = [ENGINE, "--fetch", base + path, "--state-dir", shared, "--log-level", "warn"]
first = len(gets_of(path))
both = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
outs = [p.communicate(timeout=120) for p in both]
before = len(gets_of(path))
check(all(p.returncode == 0 for p in both) and outs[0][0] == outs[1][0] and outs[0][0].strip() and
      before == first + 1,
      "two --fetch at once on one state dir: one GET, both print the same cached file (%s %d)"
      % ([o[1][-100:] for o in outs], before - first))
serving = Engine()
r = subprocess.run([ENGINE, "--fetch", base + path, "--state-dir", serving.state_dir],
                   capture_output=True, text=True, timeout=60)
check(r.returncode == 1 and "an engine serves from it" in r.stderr and len(gets_of(path)) == before,
      "--fetch on a serving engine's state dir is refused (%s)" % r.stderr.strip())
serving.stop()
server.shutdown()
finish()
