"""ksv-engine storage over http(s): a model named by an http:// URL is fetched once into
STATE_DIR/cache, checked against the expected sha256, served like a local one, and loaded
from the cache after a restart with the server gone. Broken URLs fail the revision with a
reason while the engine keeps serving. The HTTP server is Python's, on 127.0.0.1."""
import functools
import hashlib
import http.server
import os
import threading

from ksvtest import DATA, Engine, check, finish, load_json, max_abs_diff


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


handler = functools.partial(Quiet, directory=os.path.join(DATA, "models"))
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]
with open(os.path.join(DATA, "models", "fraud", "model.json"), "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
req = load_json("requests", "fraud.json")
expected = load_json("expected", "fraud.json")["data"]

eng = Engine()


def put(name, uri, sha256=None):
    rev = {"name": name + "-00001", "storage_uri": uri}
    if sha256 is not None:
        rev["sha256"] = sha256
    return eng.request("PUT", "/ksv/v1/models/" + name, {"revisions": [rev]}, admin=True)


def state_of(name):
    import time
    deadline = time.time() + 15
    while time.time() < deadline:
        _, _, st = eng.request("GET", "/ksv/v1/models/" + name, admin=True)
        r = st["revisions"][0]
        if r["state"] not in ("loading",):
            return r
        time.sleep(0.05)
    return r


st, _, _ = put("web", base + "/fraud/model.json", digest)
check(st == 202, "PUT a model with an http:// storage URI and its sha256")
r = state_of("web")
check(r["state"] == "ready", "it is fetched and loaded (%s %s)" % (r["state"], r.get("error", "")))
st, _, resp = eng.request("POST", "/v2/models/web/infer", req)
check(st == 200 and max_abs_diff(resp["outputs"][0]["data"], expected) <= 1e-6,
      "it answers like XGBoost")
cache = os.path.join(eng.state_dir, "cache")
cached = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(cache, "trees")) for f in fs
          if not f.endswith(".manifest")]
blobs = os.listdir(os.path.join(cache, "blobs"))
check(len(cached) == 1 and cached[0].endswith("/model.json") and blobs == [digest] and
      os.stat(cached[0]).st_ino == os.stat(os.path.join(cache, "blobs", digest)).st_ino,
      "the cache holds it once, as blobs/SHA256, linked as trees/ID/model.json")

st, _, _ = put("wrongsum", base + "/fraud/model.json", "0" * 64)
r = state_of("wrongsum")
check(r["state"] == "failed" and "sha256 mismatch" in r.get("error", ""), "a wrong sha256 fails the revision")
put("missing", base + "/nope/model.json")
r = state_of("missing")
check(r["state"] == "failed" and "404" in r.get("error", ""), "a 404 fails the revision with the reason (%s)" % r.get("error"))
put("notmodel", base + "/fraud/")
r = state_of("notmodel")
check(r["state"] == "failed" and "model file" in r.get("error", ""), "a URL that names no model file is refused")
put("gs", "gs://bucket/model.json")
r = state_of("gs")
check(r["state"] == "failed" and "gs://" in r.get("error", ""), "an unsupported scheme is refused with a message")
st, _, resp = put("badsum", base + "/fraud/model.json", "xyz")
check(st == 400, "a malformed sha256 is a 400")
check(eng.request("POST", "/v2/models/web/infer", req)[0] == 200, "the engine kept serving throughout")

# Restart with the server gone: the cached copy loads.
eng.request("DELETE", "/ksv/v1/models/wrongsum", admin=True)
eng.request("DELETE", "/ksv/v1/models/missing", admin=True)
eng.request("DELETE", "/ksv/v1/models/notmodel", admin=True)
eng.request("DELETE", "/ksv/v1/models/gs", admin=True)
server.shutdown()
server.server_close()
eng.stop()
eng.start()
check(eng.wait_ready(), "restarted with the HTTP server down (%s)" % (eng.request("GET", "/ksv/v1/state", admin=True)[2],))
st, _, resp = eng.request("POST", "/v2/models/web/infer", req)
check(st == 200 and max_abs_diff(resp["outputs"][0]["data"], expected) <= 1e-6,
      "the model loads from the cache and answers")
# A tampered cache file is noticed and refetched (and here, with no server, fails loudly).
os.chmod(cached[0], 0o644)  # blobs are read-only
with open(cached[0], "ab") as f:
    f.write(b" ")
eng.stop()
eng.start()
r = state_of("web")
check(r["state"] == "failed" and "127.0.0.1" in r.get("error", ""),
      "a cached file that no longer matches its sha256 is fetched again, not trusted")
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
