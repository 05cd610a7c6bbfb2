"""ksv against hostile and careless input (issue 11, findings 5, 7, 8 and 11).

A hostile node (a small HTTP server playing a compromised engine: it is the attacker, so it
is the one part written here) puts terminal escape sequences (ESC]0;... BEL, ESC[2J, a C1
CSI) in its version string, its errors and its model names; nothing of it may reach the
terminal raw through `ksv node add`, `ksv node status`, `ksv node ls`, `ksv apply` or
`ksv history`. Node names that are not DNS labels ('../../../escape', 'a/b', control
characters) are refused before anything is created. Manifest fields past the limits every
node enforces (timeout 86401, containerConcurrency 1000001, a 60-character name) are
refused at apply with FILE:LINE and the field, and a 57-character name, the longest
allowed, is served by a real engine as NAME-00001. Drift makes `ksv node status` exit 1.
History counts nodes, not models, and names the uid's login when $USER is unset."""
import hashlib
import hmac
import http.server
import json
import os
import pwd
import threading
import urllib.request

from ksvtest import ksv_cli, DATA, ENGINE, check, finish, stop_engine, tmpdir

ESC_VERSION = "\x1b]0;pwned\x07\x1b[2J1.0\u009b31m"
ESC_ERROR = "\x1b]0;owned\x07\x1b[2Jdisk on fire"
ESC_MODEL = "ghost\x1b[2J"
RAW = ("\x1b", "\x07", "\x9b", "\u009b")
TOKEN = "t" * 32

work = tmpdir("ksv-hostile-")
state_home = os.path.join(work, "a", "b", "c", "state")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=state_home,
           KSV_ENGINE=ENGINE, USER="tester")


ksv, _ = ksv_cli(env)


def raw_free(text):
    return not any(c in text for c in RAW)


class HostileNode(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, obj):
        body = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/ksv/v1/identity?challenge="):
            # A compromised engine holds the token, so it passes ksv's identity check
            # (tests/cli_identity.py has the impostors that do not).
            challenge = self.path.split("=", 1)[1]
            nonce = "ab" * 32
            listen = "127.0.0.1:%d" % self.server.server_address[1]
            msg = "ksv-engine-identity-v1\n%s\n%s\n%s" % (challenge, nonce, listen)
            proof = hmac.new(TOKEN.encode(), msg.encode(), hashlib.sha256).hexdigest()
            self.answer(200, {"listen": listen, "nonce": nonce, "proof": proof})
        elif self.path == "/ksv/v1/node":
            self.answer(200, {"version": ESC_VERSION, "threads": 1, "uptime_s": 5.0})
        elif self.path == "/ksv/v1/state":
            self.answer(200, {"models": [{"name": ESC_MODEL, "revisions": []}]})
        elif self.path.startswith("/ksv/v1/models/"):
            self.answer(500, {"error": ESC_ERROR})
        else:
            self.answer(200, {"live": True})

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(500, {"error": ESC_ERROR})

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileNode)
threading.Thread(target=server.serve_forever, daemon=True).start()
token_file = os.path.join(work, "token")
with open(token_file, "w") as f:
    f.write(TOKEN + "\n")
url = "http://127.0.0.1:%d" % server.server_address[1]
iris = os.path.join(DATA, "models", "iris", "model.json")


def manifest(name, text):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def isvc(name, nodes, predictor_extra=""):
    return """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: %s
  annotations:
    ksv.io/nodes: "%s"
spec:
  predictor:
%s    model:
      modelFormat:
        name: xgboost
      storageUri: %s
""" % (name, nodes, predictor_extra, iris)


local_dir = os.path.join(state_home, "ksv", "nodes", "loc")
try:
    # --- finding 8: node names are DNS labels, checked before anything is created --------
    for bad in ("../../../escape", "a/b", "bad\x01name", "Upper", "dash-", "x" * 64):
        rc, out, err = ksv("node", "add", bad, "local")
        check(rc == 2 and "DNS" in err and raw_free(out + err),
              "node add %r is refused as not a DNS label (rc %d: %s)" % (bad, rc, err.strip()[:120]))
    made = [os.path.join(d, n) for d, dirs, files in os.walk(work) for n in dirs + files]
    check(not any("escape" in p or "a/b/c/state/ksv/nodes" in p for p in made),
          "a refused name creates no state dir anywhere (%s)" % [p for p in made if "escape" in p])
    rc, nodes = ksv("node", "ls", "-o", "json")[:2]
    check(rc == 0 and json.loads(nodes) == [], "a refused name records no node")

    # --- finding 5: nothing from a node reaches the terminal raw -------------------------
    rc, out, err = ksv("node", "add", "evil", url, "--token-file", token_file, drop=("USER",))
    check(rc == 0, "node add of the hostile node works (%s)" % err.strip()[:200])
    check(raw_free(out + err) and "?]0;pwned??[2J1.0?31m" in out,
          "node add prints its version filtered: %r" % out.strip())
    rc, out, err = ksv("node", "ls")
    check(rc == 0 and raw_free(out + err) and "?]0;pwned" in out,
          "node ls prints the stored version filtered: %r" % out.strip())
    rc, out, err = ksv("node", "status", "evil")
    check(raw_free(out + err) and "ghost?[2J" in out,
          "node status prints the node's model names filtered: %r" % out.strip()[-200:])
    check(rc == 1, "node status exits 1: the hostile node drifts (rc %d)" % rc)

    # --- finding 11: one node, several models: history counts the node once per model ----
    three = manifest("three.yaml", "---\n".join(isvc(n, "evil") for n in ("m1", "m2", "m3")))
    rc, out, err = ksv("apply", "-f", three)
    check(rc == 1, "apply to the failing node exits 1 (rc %d)" % rc)
    check(raw_free(out + err) and "?]0;owned??[2Jdisk on fire" in out + err,
          "apply prints the node's error filtered: %r" % (out + err)[-300:])
    rc, out = ksv("history", "-o", "json", "--limit", "20")[:2]
    rows = [h for h in json.loads(out) if h["action"] == "reconcile"]
    check(len(rows) == 3 and all(h["result"] == "failed on 1 of 1 node(s)" for h in rows),
          "each model's history row says 1 of 1 node(s): %s" % [h["result"] for h in rows])
    check(all(list(h["nodes"]) == ["evil"] for h in rows),
          "each row lists the one node once: %s" % [h["nodes"] for h in rows])
    rc, out, err = ksv("history", "--limit", "20")
    check(rc == 0 and raw_free(out + err), "history prints the node's error filtered")
    rc, out = ksv("history", "-o", "json", "--limit", "50")[:2]
    added = [h for h in json.loads(out) if h["action"] == "node add"]
    login = pwd.getpwuid(os.getuid()).pw_name
    check(added and added[-1]["actor"] == login,
          "with $USER unset the actor is the uid's login name %r: %s" % (login, added))
    ksv("node", "rm", "evil")

    # --- finding 7: one set of limits, refused at apply with FILE:LINE and the field ------
    rc, out, err = ksv("node", "add", "loc", "local")
    check(rc == 0, "node add loc local (%s)" % err.strip()[:200])
    for what, text, field in (
            ("timeout 86401", isvc("slow", "loc", "    timeout: 86401\n"), "spec.predictor.timeout"),
            ("containerConcurrency 1000001", isvc("busy", "loc", "    containerConcurrency: 1000001\n"),
             "spec.predictor.containerConcurrency"),
            ("a 60-character name", isvc("n" * 60, "loc"), "metadata.name"),
            ("a node name that is no label", isvc("fine", "lo_c"), "ksv.io/nodes")):
        path = manifest("bad.yaml", text)
        rc, out, err = ksv("apply", "-f", path)
        check(rc != 0 and (path + ":") in err and field in err,
              "%s is refused at apply with file:line and %s (rc %d: %s)" % (what, field, rc, err.strip()[:200]))
    rc, out = ksv("get", "models", "-o", "json")[:2]
    stored = [m["name"] for m in json.loads(out)] if rc == 0 else None
    check(stored == ["m1", "m2", "m3"], "nothing refused was stored: %s" % stored)
    longest = "l" * 57
    ok = manifest("longest.yaml", isvc(longest, "loc", "    timeout: 86400\n    containerConcurrency: 1000000\n"))
    rc, out, err = ksv("apply", "-f", ok, "--timeout", "60")
    check(rc == 0, "a 57-character name with timeout 86400 and containerConcurrency 1000000 is "
                   "served (%s)" % (out + err).strip()[-300:])
    with open(os.path.join(local_dir, "address")) as f:
        addr = f.read().strip()
    with open(os.path.join(local_dir, "token")) as f:
        token = f.read().strip()
    req = urllib.request.Request("http://%s/ksv/v1/models/%s" % (addr, longest),
                                 headers={"Authorization": "Bearer " + token})
    state = json.loads(urllib.request.urlopen(req, timeout=10).read())
    revs = [r["name"] for r in state.get("revisions", []) if r.get("state") == "ready"]
    check(revs == [longest + "-00001"], "the engine serves %s-00001: %s" % (longest[:8], revs))
    rc, out, err = ksv("node", "status", "loc")
    check(rc == 0, "node status exits 0 without drift (%s)" % (out + err).strip()[-200:])
    # Drift: the model removed behind ksv's back.
    req = urllib.request.Request("http://%s/ksv/v1/models/%s" % (addr, longest), method="DELETE",
                                 headers={"Authorization": "Bearer " + token})
    urllib.request.urlopen(req, timeout=10).read()
    rc, out, err = ksv("node", "status", "loc")
    check(rc == 1 and "drift" in out, "node status exits 1 on drift (rc %d: %s)" % (rc, out.strip()[-200:]))
finally:
    server.shutdown()
    # Every engine ksv started under this test's folder (also those a build without the
    # name check started outside the state folder).
    for d, dirs, files in os.walk(work):
        if "lock" in files:
            stop_engine(d)
finish()
