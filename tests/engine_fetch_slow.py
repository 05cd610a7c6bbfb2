"""Downloads never hold up the node (issue 11, finding 9): a model served over http:// at
2 KB/s, or forever, is fetched on the engine's fetch threads, so another model's traffic
change applies at once; the download is cancelled when its model is deleted or its
revision replaced, ends at --fetch-timeout, stops when it stalls (--fetch-stall), and
SIGTERM exits promptly with one still running. The HTTP server is Python's, on 127.0.0.1,
and trickles its bytes."""
import http.server
import os
import select
import socket
import threading
import time

from ksvtest import Engine, check, finish, model_path

TRICKLE_RATE = 2048            # bytes per second
open_conns = {}                # path -> number of connections now open
opened = {}                    # path -> connections ever opened
lock = threading.Lock()


class Trickle(http.server.BaseHTTPRequestHandler):
    """/trickle/N/model.json: claims 50 MB, sends 2 KB/s until the client goes away.
    /stall/N/model.json: sends the headers and 10 bytes, then nothing."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        stall = self.path.startswith("/stall/")
        with lock:
            open_conns[self.path] = open_conns.get(self.path, 0) + 1
            opened[self.path] = opened.get(self.path, 0) + 1
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(50 << 20))
            self.end_headers()
            self.wfile.write(b"{" + b" " * 9)
            self.wfile.flush()
            while True:
                # The client closing shows as the socket turning readable with EOF.
                r, _, _ = select.select([self.connection], [], [], 0.1)
                if r and not self.connection.recv(1, socket.MSG_PEEK):
                    return
                if not stall:
                    self.wfile.write(b" " * (TRICKLE_RATE // 10))
                    self.wfile.flush()
        except OSError:
            return
        finally:
            with lock:
                open_conns[self.path] -= 1


def still_open(path):
    with lock:
        return open_conns.get(path, 0)


def wait_for(cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]

eng = Engine("--fetch-timeout", "8", "--fetch-stall", "2")


def put(name, revs, traffic=None):
    body = {"revisions": [{"name": r, "storage_uri": u} for r, u in revs]}
    if traffic:
        body["traffic"] = traffic
    st, _, resp = eng.request("PUT", "/ksv/v1/models/" + name, body, admin=True)
    return st, resp


def revision(model, rev):
    st, _, state = eng.request("GET", "/ksv/v1/models/" + model, admin=True)
    if st != 200:
        return None
    return next((r for r in state["revisions"] if r["name"] == rev), None)


fraud, iris = model_path("fraud"), model_path("iris")
check(put("other", [("other-00001", fraud)])[0] == 202, "PUT a local model")
eng.wait_applied("other", timeout=30)

# An endless download starts first, then the unrelated model changes.
slow = base + "/trickle/1/model.json"
check(put("slow", [("slow-00001", slow)])[0] == 202, "PUT a model served at 2 KB/s")
check(wait_for(lambda: still_open("/trickle/1/model.json") == 1, 10), "its download started")
t0 = time.time()
st, _ = put("other", [("other-00001", fraud), ("other-00002", iris)],
            {"other-00001": 0, "other-00002": 100})
applied = wait_for(lambda: eng.request("GET", "/ksv/v1/models/other", admin=True)[2]
                   .get("traffic_applied"), 10)
took = time.time() - t0
check(st == 202 and applied and took < 5,
      "another model's traffic change applies while it downloads (%.2f s)" % took)
r = revision("slow", "slow-00001")
check(r and r["state"] == "loading", "the slow model is still loading (%s)" % (r and r["state"]))

# Replacing the revision cancels its download.
check(put("slow", [("slow-00002", fraud)])[0] == 202, "replace the downloading revision")
check(wait_for(lambda: still_open("/trickle/1/model.json") == 0, 5),
      "the replaced revision's download is cancelled (connection closed)")
eng.wait_applied("slow", timeout=30)
check(revision("slow", "slow-00001") is None, "the replaced revision is gone once the new one serves")

# Deleting the model cancels its download.
put("doomed", [("doomed-00001", base + "/trickle/2/model.json")])
check(wait_for(lambda: still_open("/trickle/2/model.json") == 1, 10), "a second download started")
check(eng.request("DELETE", "/ksv/v1/models/doomed", admin=True)[0] == 200, "DELETE it")
check(wait_for(lambda: still_open("/trickle/2/model.json") == 0, 5),
      "the deleted model's download is cancelled (connection closed)")

# The overall deadline ends an endless download; the stall rule a silent one.
t0 = time.time()
put("endless", [("endless-00001", base + "/trickle/3/model.json")])
put("silent", [("silent-00001", base + "/stall/4/model.json")])
wait_for(lambda: (revision("silent", "silent-00001") or {}).get("state") == "failed", 10)
r = revision("silent", "silent-00001")
check(r["state"] == "failed" and "stalled" in r.get("error", "") and time.time() - t0 < 8,
      "a download that stops moving fails by the stall rule (%s)" % r.get("error"))
wait_for(lambda: (revision("endless", "endless-00001") or {}).get("state") == "failed", 15)
r = revision("endless", "endless-00001")
took = time.time() - t0
check(r["state"] == "failed" and "not fetched within 8 s" in r.get("error", "") and took < 12,
      "an endless download fails at --fetch-timeout (%.1f s: %s)" % (took, r.get("error")))
check(wait_for(lambda: still_open("/trickle/3/model.json") == 0 and
               still_open("/stall/4/model.json") == 0, 5), "both connections closed")
check(eng.request("POST", "/v2/models/other/infer",
                  {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                               "data": [5.1, 3.5, 1.4, 0.2]}]})[0] == 200,
      "the engine kept serving throughout")

# SIGTERM with a download running exits promptly.
put("last", [("last-00001", base + "/trickle/5/model.json")])
check(wait_for(lambda: still_open("/trickle/5/model.json") == 1, 10), "one more download running")
t0 = time.time()
rc = eng.stop(timeout=20)
took = time.time() - t0
check(rc == 0 and took < 5, "SIGTERM during a download: exit 0 in %.2f s" % took)
check(wait_for(lambda: still_open("/trickle/5/model.json") == 0, 5), "and its connection closed")
check(opened.get("/trickle/5/model.json") == 1, "the download was never retried")
finish()
