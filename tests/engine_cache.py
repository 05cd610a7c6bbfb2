"""The engine's model cache is content-addressed and capped (--cache-max): the same bytes
fetched under two URLs are stored once; past the cap, the least recently used model goes
first, never one a revision holds; a cached model is checked against its digests each
time it loads, and a tampered one is fetched again."""
import functools
import hashlib
import http.server
import os
import shutil
import threading
import time

from ksvtest import DATA, Engine, check, finish, tmpdir

www = tmpdir("ksv-cache-www-")
files = {}
for key, src in [("c", "churn-v1/model.json"), ("b", "iris/model.json"),
                 ("a", "iris-ubj/model.ubj"), ("d", "iris-bst/model.bst")]:
    os.makedirs(os.path.join(www, key))
    dst = os.path.join(www, key, os.path.basename(src))
    shutil.copy(os.path.join(DATA, "models", src), dst)
    with open(dst, "rb") as f:
        data = f.read()
    files[key] = (os.path.join(key, os.path.basename(src)), hashlib.sha256(data).hexdigest(),
                  len(data))
os.makedirs(os.path.join(www, "again"))
shutil.copy(os.path.join(www, files["b"][0]), os.path.join(www, "again", "model.json"))

hits = []


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        hits.append(self.path)
        super().do_GET()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=www))
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d/" % server.server_address[1]

size = {k: v[2] for k, v in files.items()}
# Room for c, a and d, not for b as well.
cap = size["c"] + size["a"] + size["d"] + 4096
assert cap < sum(size.values())
eng = Engine("--cache-max", str(cap))
blobs = os.path.join(eng.state_dir, "cache", "blobs")


def put(name, key, uri=None):
    rev = {"name": name + "-00001", "storage_uri": uri or base + files[key][0]}
    st, _, _ = eng.request("PUT", "/ksv/v1/models/" + name, {"revisions": [rev]}, admin=True)
    return st


def wait_gone(name):
    deadline = time.time() + 10
    while time.time() < deadline and eng.request("GET", "/ksv/v1/models/" + name, admin=True)[0] != 404:
        time.sleep(0.05)


def settle(name):
    st = eng.wait_applied(name, timeout=30)
    return st["revisions"][0]["state"]


def held(n):
    """Waits until revisions hold n cached models (the janitor lets go of deleted ones)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        c = eng.request("GET", "/ksv/v1/node", admin=True)[2]["cache"]
        if c["held"] == n:
            return True
        time.sleep(0.05)
    return False


def cached():
    return set(os.listdir(blobs))


# Fetched in the order c, a, b: a is older than b until it is used again below, so only
# least-recently-used (not first-in-first-out) evicts b.
for name in ("c", "a", "b"):
    put(name, name)
    check(settle(name) == "ready", "model %s fetched and ready" % name)
    time.sleep(0.02)  # distinct use times
check(cached() == {files[k][1] for k in "cab"},
      "three models, three blobs, each named by its sha256 (over the cap: all held by revisions)")

# The same bytes under another URL: no second copy.
put("b2", None, base + "again/model.json")
check(settle("b2") == "ready" and len(cached()) == 3, "the same bytes under a second URL are stored once")
eng.request("DELETE", "/ksv/v1/models/b2", admin=True)

# Free a and b; use a again, so b is now the least recently used model nobody holds.
for name in ("a", "b"):
    eng.request("DELETE", "/ksv/v1/models/" + name, admin=True)
    wait_gone(name)
check(held(1), "once a and b are deleted, revisions hold one cached model (c)")
n_hits = len(hits)
put("a", "a")
check(settle("a") == "ready" and len(hits) == n_hits, "a loads again from the cache, without the network")
eng.request("DELETE", "/ksv/v1/models/a", admin=True)
wait_gone("a")
check(held(1), "and again after a is deleted a second time")

put("d", "d")
check(settle("d") == "ready", "a fourth model d is fetched")
left = cached()
check(files["b"][1] not in left, "past --cache-max, b (least recently used, unheld) was evicted")
check(files["a"][1] in left, "a, used more recently than b, stays")
check(files["c"][1] in left, "c, the oldest but held by a loaded revision, stays")
check(files["d"][1] in left, "d, just fetched, stays")
total = sum(os.path.getsize(os.path.join(blobs, b)) for b in left)
node = eng.request("GET", "/ksv/v1/node", admin=True)[2]["cache"]
check(total <= cap and node["bytes"] == total and node["max_bytes"] == cap and node["models"] == 3,
      "the cache is under its cap (%d <= %d bytes; node info: %s)" % (total, cap, node))
trees = os.listdir(os.path.join(eng.state_dir, "cache", "trees"))
check(len([t for t in trees if t.endswith(".manifest")]) == 3, "and so are its trees (%s)" % trees)

# Tampering: the copy c's revision was loaded from is changed on disk; a reload notices.
tree_files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(eng.state_dir, "cache", "trees"))
              for f in fs if f == "model.json"]
check(len(tree_files) == 1, "c's file is in the cache once")
eng.stop()
os.chmod(tree_files[0], 0o644)
with open(tree_files[0], "r+b") as f:
    f.seek(100)
    f.write(b"#")
n_hits = len(hits)
eng.start()
check(settle("c") == "ready", "after a restart c loads")
check(len(hits) == n_hits + 1 and hits[-1] == "/" + files["c"][0],
      "its tampered cached copy failed the check and was fetched again")
with open(os.path.join(blobs, files["c"][1]), "rb") as f:
    check(hashlib.sha256(f.read()).hexdigest() == files["c"][1], "the cache holds the right bytes again")
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
