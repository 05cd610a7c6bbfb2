"""ksv sends the admin token only to the engine that holds it (issue 11, finding 10).

Each impostor here is a process that holds the port where ksv expects its engine and
records every byte it receives; the test then reads that record: the token must not be in
it, nor any Authorization header, nor any change.

1. A real engine: its proof is checked here with Python's own hmac module (so the HMAC in
   C is not only checked against itself), and it is added as an http:// node.
2. That engine stops and an impostor that answers 200 to everything (the identity route
   included, with a made-up proof) takes its port: `ksv apply` and `ksv node add` fail with
   "not proven" and the impostor got no token.
3. An SSH node (real sshd, real engine): the engine ran there once, so its state dir holds
   a token. Then another process binds the engine's port without listening (so ksv's first
   probe finds nothing), and starts listening only once the engine ksv starts has failed to
   bind (its engine.log says so): the race the finding describes, made deterministic.
   ksv sees something answer, finds the engine it started is not running, refuses, and the
   impostor got no token. Afterwards, with the port free, the same node adds and serves."""
import hashlib
import hmac
import http.server
import json
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.request

from ksvtest import ksv_cli, DATA, ENGINE, check, finish, free_port, lock_pid, tmpdir
from sshnode import SshNode, skip_unless_available

skip_unless_available()

work = tmpdir("ksv-identity-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), HOME=work, USER="tester",
           XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE)
env.pop("SSH_AUTH_SOCK", None)
ksv, ksv_json = ksv_cli(env)
iris = os.path.join(DATA, "models", "iris", "model.json")
manifest = os.path.join(work, "iris.yaml")
with open(manifest, "w") as f:
    f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            "metadata:\n  name: iris\nspec:\n  predictor:\n    model:\n"
            "      modelFormat:\n        name: xgboost\n      storageUri: file://%s\n" % iris)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 {} to everything and keeps every request line, header and body."""
    protocol_version = "HTTP/1.1"
    seen = []
    lock = threading.Lock()

    def record(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with Recorder.lock:
            Recorder.seen.append(self.requestline + "\n" + str(self.headers) + body.decode(
                "utf-8", "replace"))
        answer = {"version": "1.0", "threads": 1, "uptime_s": 1, "models": [], "live": True}
        if self.path.startswith("/ksv/v1/identity"):
            answer = {"listen": "127.0.0.1:1", "nonce": "ab" * 32, "proof": "cd" * 32}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = record

    def log_message(self, *args):
        pass


def recorded():
    with Recorder.lock:
        return "\n".join(Recorder.seen)


def got_nothing_secret(token):
    text = recorded()
    return (token not in text and "authorization" not in text.lower()
            and "PUT " not in text and "DELETE " not in text)


# --- 1. the real engine: its proof checked with Python's hmac; an http:// node on it --------
engine_state = os.path.join(work, "engine-web")
port = free_port()
web_log = open(os.path.join(work, "engine-web.log"), "w")
proc = subprocess.Popen([ENGINE, "--listen", "127.0.0.1:%d" % port, "--state-dir", engine_state],
                        stdout=web_log, stderr=subprocess.STDOUT)
deadline = time.monotonic() + 20
while time.monotonic() < deadline and not os.path.exists(os.path.join(engine_state, "address")):
    time.sleep(0.05)
challenge = secrets.token_hex(32)
with urllib.request.urlopen("http://127.0.0.1:%d/ksv/v1/identity?challenge=%s"
                            % (port, challenge), timeout=10) as r:
    answer = json.loads(r.read())
token_file = os.path.join(engine_state, "token")
with open(token_file) as f:
    token = f.read().strip()
msg = "ksv-engine-identity-v1\n%s\n%s\n%s" % (challenge, answer["nonce"], answer["listen"])
want = hmac.new(token.encode(), msg.encode(), hashlib.sha256).hexdigest()
check(answer["proof"] == want and answer["listen"] == "127.0.0.1:%d" % port
      and token not in json.dumps(answer),
      "engine: its proof is Python's HMAC-SHA-256 of the challenge, its nonce and %s"
      % answer.get("listen"))
url = "http://127.0.0.1:%d" % port
rc, out, err = ksv("node", "add", "web", url, "--token-file", token_file)
check(rc == 0, "http node: the real engine is added (%s)" % err.strip()[-200:])

# --- 2. the engine stops and an impostor takes its port -------------------------------------
proc.terminate()
proc.wait(timeout=20)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Recorder)
threading.Thread(target=server.serve_forever, daemon=True).start()
rc, out, err = ksv("apply", "-f", manifest, "--node", "web")
check(rc != 0 and "not proven" in err and "token was not sent" in err,
      "http node: apply refuses the impostor on the engine's port (rc %d: %s)"
      % (rc, err.strip()[-300:]))
rc, out, err = ksv("node", "add", "imp", url, "--token-file", token_file)
check(rc != 0 and "not proven" in err,
      "http node: node add refuses it too (rc %d: %s)" % (rc, err.strip()[-200:]))
asked = "GET /ksv/v1/identity?challenge=" in recorded()
check(asked and got_nothing_secret(token),
      "http node: the impostor was asked for a proof and received no token and no change "
      "(%d requests)" % len(Recorder.seen))
server.shutdown()
server.server_close()

# --- 3. an SSH node whose engine port is taken between ksv's probe and the engine's bind -----
box = SshNode(work)
box.start()
engine_dir = os.path.join(work, "edge-engine")
engine_port = free_port()
common = box.node_args(ENGINE, engine_dir, engine_port)
rc, out, err = ksv("node", "add", "edge", box.address, "--trust-new", *common)
check(rc == 0, "ssh node: added once, so its state dir holds a token (%s)" % err.strip()[-200:])
with open(os.path.join(engine_dir, "token")) as f:
    ssh_token = f.read().strip()


def alive(pid):
    """Whether pid runs (a zombie no one reaped yet counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


pid = lock_pid(engine_dir)
if pid:
    os.kill(pid, 15)
deadline = time.monotonic() + 20
while time.monotonic() < deadline and pid and alive(pid):
    time.sleep(0.05)
check(pid and not alive(pid), "ssh node: its engine stopped")
check(ksv("node", "rm", "edge")[0] == 0, "ssh node: removed from ksv")
# A port the stopped engine never used (its old one may have TIME_WAIT sockets, which a
# bind without SO_REUSEADDR cannot share): the state dir and its token stay the same.
engine_port = free_port()
common = box.node_args(ENGINE, engine_dir, engine_port)

log_path = os.path.join(engine_dir, "engine.log")
log_size = os.path.getsize(log_path) if os.path.exists(log_path) else 0
impostor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
impostor.bind(("127.0.0.1", engine_port))   # bound, not listening: connections are refused
Recorder.seen = []
listening = threading.Event()
impostor_server = []


def listen_once_the_engine_failed():
    """Starts serving on the held port once the engine ksv starts has logged its failure."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with open(log_path, errors="replace") as f:
                f.seek(log_size)
                if "in use" in f.read().lower():
                    break
        except OSError:
            pass
        time.sleep(0.02)
    impostor.listen(16)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", engine_port), Recorder,
                                          bind_and_activate=False)
    srv.socket.close()
    srv.socket = impostor
    impostor_server.append(srv)
    listening.set()
    srv.serve_forever()


threading.Thread(target=listen_once_the_engine_failed, daemon=True).start()
rc, out, err = ksv("node", "add", "edge", box.address, *common)
check(listening.is_set(), "ssh node: the engine ksv started failed to bind, and the impostor "
                          "then listened on its port")
check(rc != 0 and "another process holds the port" in err,
      "ssh node: node add refuses (rc %d: %s)" % (rc, err.strip()[-300:]))
check(got_nothing_secret(ssh_token),
      "ssh node: the impostor received no token (%d requests: %s)"
      % (len(Recorder.seen), [s.split("\n")[0] for s in Recorder.seen][:4]))
for srv in impostor_server:
    srv.shutdown()
    srv.server_close()
impostor.close()

# The impostor's side of the connections it closed stays in TIME_WAIT on that port for a
# minute (it did not set SO_REUSEADDR), so the node comes back on another free port.
engine_port = free_port()
common = box.node_args(ENGINE, engine_dir, engine_port)

# With a free port, the same node (same state dir and token) is added and serves: the
# checks are no obstacle to the real engine.
rc, out, err = ksv("node", "add", "edge", box.address, *common)
check(rc == 0, "ssh node: on a free port it is added (%s)" % err.strip()[-200:])
rc, out, err = ksv("apply", "-f", manifest, "--node", "edge", "--wait")
check(rc == 0, "ssh node: apply through the tunnel works (%s)" % err.strip()[-200:])
pid = lock_pid(engine_dir)
if pid and alive(pid):
    os.kill(pid, 15)
box.stop()
finish()
