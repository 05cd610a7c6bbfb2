"""gs:// and hf:// against a local HTTP server laid out as Google Cloud Storage's JSON API
(listing pages of two, ?alt=media downloads, a bearer token for a private bucket) and as the
Hugging Face Hub (revision -> commit through /api/models, files from /resolve/COMMIT/...,
which redirects as the Hub does, HF_TOKEN for a private repository). A branch that moves
after the fetch does not change what the node serves, across a restart."""
import hashlib
import http.server
import json
import os
import shutil
import threading
import time
import urllib.parse

from ksvtest import DATA, Engine, check, finish, load_json, max_abs_diff

with open(os.path.join(DATA, "models", "fraud", "model.json"), "rb") as f:
    fraud = f.read()
with open(os.path.join(DATA, "models", "iris", "model.json"), "rb") as f:
    iris = f.read()
gcs = {"models": {"fraud/model.json": fraud, "fraud/README.md": b"fraud\n",
                  "fraud/extra/notes.txt": b"notes\n", "other/model.json": iris},
       "private": {"m/model.json": fraud}}
commit_a, commit_b = hashlib.sha1(b"a").hexdigest(), hashlib.sha1(b"b").hexdigest()
hub = {"commits": {commit_a: {"model.json": fraud, "README.md": b"# model\n"},
                   commit_b: {"model.json": iris, "README.md": b"# model\n"}},
       "branches": {"main": commit_a}}
requests = []


class Store(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        requests.append(self.path)
        parts = u.path.split("/")
        auth = self.headers.get("Authorization", "")
        if u.path.startswith("/storage/v1/b/"):
            bucket = parts[4]
            objs = gcs.get(bucket)
            if objs is None:
                return self.reply(404, {"error": {"code": 404, "message": "The specified bucket does not exist."}})
            if bucket == "private" and auth != "Bearer gcs-token":
                return self.reply(401, {"error": {"code": 401, "message": "Anonymous caller does not have storage.objects.list access."}})
            if len(parts) == 6:  # /storage/v1/b/B/o: a listing, two per page
                prefix = q.get("prefix", [""])[0]
                names = sorted(n for n in objs if n.startswith(prefix))
                start = int(q.get("pageToken", ["0"])[0])
                page = {"kind": "storage#objects",
                        "items": [{"name": n, "size": str(len(objs[n]))} for n in names[start:start + 2]]}
                if start + 2 < len(names):
                    page["nextPageToken"] = str(start + 2)
                return self.reply(200, page)
            name = urllib.parse.unquote(parts[6])
            if q.get("alt") == ["media"] and name in objs:
                return self.reply(200, objs[name], "application/octet-stream")
            return self.reply(404, {"error": {"code": 404, "message": "No such object"}})
        if u.path.startswith("/api/models/"):
            repo, rev = "/".join(parts[3:5]), urllib.parse.unquote(parts[6])
            if repo == "org/private" and auth != "Bearer hf-token":
                return self.reply(401, {"error": "Invalid username or password."})
            if repo not in ("org/repo", "org/private"):
                return self.reply(404, {"error": "Repository not found"})
            sha = hub["branches"].get(rev, rev if rev in hub["commits"] else None)
            if not sha:
                return self.reply(404, {"error": "Invalid rev id: " + rev})
            return self.reply(200, {"id": repo, "sha": sha, "siblings": [
                {"rfilename": n} for n in sorted(hub["commits"][sha])]})
        if len(parts) > 5 and parts[3] == "resolve":
            sha, name = parts[4], "/".join(parts[5:])
            files = hub["commits"].get(sha)
            if files is None or name not in files:
                return self.reply(404, {"error": "Entry not found"})
            # The Hub answers with a redirect to its CDN.
            return self.reply(302, b"", headers=[("Location", "/cdn/%s/%s" % (sha, name))])
        if parts[1] == "cdn":
            return self.reply(200, hub["commits"][parts[2]]["/".join(parts[3:])], "application/octet-stream")
        self.reply(404, {"error": "not here"})


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]
req = load_json("requests", "fraud.json")
expected = load_json("expected", "fraud.json")["data"]

eng = Engine(extra_env={"STORAGE_EMULATOR_HOST": base, "HF_ENDPOINT": base,
                        "GOOGLE_OAUTH_ACCESS_TOKEN": "gcs-token", "HF_TOKEN": "hf-token"})


def put(name, uri):
    body = {"revisions": [{"name": name + "-00001", "storage_uri": uri}]}
    return eng.request("PUT", "/ksv/v1/models/" + name, body, admin=True)[0]



def answers(name):
    st, _, resp = eng.request("POST", "/v2/models/%s/infer" % name, req)
    return st == 200 and max_abs_diff(resp["outputs"][0]["data"], expected) <= 1e-6


def tree_files(name):
    """The files of the cache tree the model's folder lives in."""
    trees = os.path.join(eng.state_dir, "cache", "trees")
    out = []
    for m in os.listdir(trees):
        if m.endswith(".manifest"):
            out.append(sorted(l.split("  ", 1)[1] for l in open(os.path.join(trees, m)).read().splitlines()))
    return out


for name, uri in [("gsfile", "gs://models/fraud/model.json"), ("gsdir", "gs://models/fraud"),
                  ("gspriv", "gs://private/m/model.json"), ("hfrepo", "hf://org/repo"),
                  ("hffile", "hf://org/repo/model.json"), ("hfpriv", "hf://org/private:%s" % commit_a)]:
    check(put(name, uri) == 202, "PUT " + uri)
    r = eng.revision_settled(name)
    check(r["state"] == "ready" and answers(name), "%s: fetched, loaded, answers like XGBoost (%s %s)"
          % (uri, r["state"], r.get("error", "")))
check(["README.md", "extra/notes.txt", "model.json"] in tree_files("gsdir"),
      "gs://models/fraud: every object under the prefix, across listing pages, layout kept")
check(any(p.startswith("/storage/v1/b/models/o?prefix=fraud&pageToken=2") for p in requests),
      "the listing was paged")
check(any(p.startswith("/cdn/%s/" % commit_a) for p in requests),
      "hf files came from the commit's resolve URL, through the Hub's redirect")

for name, uri, why in [("gsnone", "gs://models/nope", "no file at or under"),
                       ("gsbucket", "gs://nobucket/m", "HTTP 404 The specified bucket does not exist."),
                       ("hfnone", "hf://org/missing", "HTTP 404 Repository not found"),
                       ("hfrev", "hf://org/repo:nobranch", "HTTP 404 Invalid rev id: nobranch"),
                       ("hfbad", "hf://justone", "expected hf://ORG/REPO")]:
    put(name, uri)
    r = eng.revision_settled(name)
    check(r["state"] == "failed" and uri in r.get("error", "") and why in r.get("error", ""),
          "%s fails naming the URI and why (%s)" % (uri, r.get("error")))
    eng.request("DELETE", "/ksv/v1/models/" + name, admin=True)

eng.stop()
with open(os.path.join(eng.state_dir, "state.json")) as f:
    saved = json.load(f)
pins = {r["name"]: r.get("pinned_storage_uri") for m in saved["models"] for r in m["revisions"]}
check(pins.get("hfrepo-00001") == "hf://org/repo:" + commit_a and
      pins.get("hffile-00001") == "hf://org/repo:%s/model.json" % commit_a and
      pins.get("gsfile-00001") is None,
      "the applied state pins each hf:// revision to its commit (%s)" % pins)
# Tokens: without them the private bucket and repository are refused, with the status.
eng.env = {k: v for k, v in eng.env.items() if k not in ("GOOGLE_OAUTH_ACCESS_TOKEN", "HF_TOKEN")}
shutil.rmtree(os.path.join(eng.state_dir, "cache"))  # nothing to load from but the stores
requests.clear()
hub["branches"]["main"] = commit_b  # the branch moves after the node fetched it
eng.start()
r = eng.revision_settled("gspriv")
check(r["state"] == "failed" and "HTTP 401" in r.get("error", ""),
      "no GOOGLE_OAUTH_ACCESS_TOKEN: the private bucket answers 401, named (%s)" % r.get("error"))
r = eng.revision_settled("hfpriv")
check(r["state"] == "failed" and "HTTP 401" in r.get("error", ""),
      "no HF_TOKEN: the private repository answers 401, named (%s)" % r.get("error"))
r = eng.revision_settled("hfrepo")
st, _, state = eng.request("GET", "/ksv/v1/models/hfrepo", admin=True)
check(r["state"] == "ready" and answers("hfrepo"),
      "hf://org/repo after its branch moved, cache gone, engine restarted: still the commit it "
      "was first fetched at (%s %s)" % (r["state"], r.get("error", "")))
check(not any(p.startswith("/api/models/org/repo/revision/main") for p in requests) and
      any(p.startswith("/cdn/%s/" % commit_a) for p in requests),
      "the restarted node fetched the pinned commit, not the branch")
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
