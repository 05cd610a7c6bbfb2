"""toy_runtime: a small real HTTP model server that ksv-engine runs as an external runtime in
tests of supervision and failure handling (tests/runtimes_supervision.py). Real MLServer and
llama.cpp are tested in runtimes_mlserver.py and runtimes_llama.py; this one misbehaves on
purpose, as TOY_MODE says:

  ok           /health 200; V2 infer answers the sum of each row; V1 predict too;
               /v1/completions streams 5 chunks 0.2 s apart when "stream" is true
  garbage      infer answers 200 with a body that is not JSON
  hang         infer never answers
  crash-start  prints a few lines and exits 3 before it is ready
  never-ready  /health answers 503 forever

Usage: toy_runtime.py MODEL_PATH MODEL_NAME (the engine substitutes both); the port is $PORT.
"""
import http.server
import json
import os
import sys
import time

mode = os.environ.get("TOY_MODE", "ok")
port = int(os.environ["PORT"])
model_path, model_name = sys.argv[1], sys.argv[2]
print("toy runtime: mode %s, model %s at %s, port %d, CUDA_VISIBLE_DEVICES=%r" %
      (mode, model_name, model_path, port, os.environ.get("CUDA_VISIBLE_DEVICES")), flush=True)
if os.path.isfile(model_path):
    with open(model_path, "rb") as f:
        print("toy runtime: the model file begins %r" % f.read(40).decode("ascii", "replace"), flush=True)
if mode == "crash-start":
    print("toy runtime: loading weights... failed: tensor blk.0 is truncated", flush=True)
    sys.exit(3)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self.reply(503 if mode == "never-ready" else 200, {"ok": mode != "never-ready"})
        self.reply(404, {"error": "no " + self.path})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if mode == "garbage":
            return self.reply(200, b"<html>upstream exploded", "text/html")
        if mode == "hang":
            time.sleep(3600)
        if self.path == "/v2/models/%s/infer" % model_name:
            inp = body["inputs"][0]
            rows = [inp["data"][i:i + inp["shape"][1]] for i in range(0, len(inp["data"]), inp["shape"][1])]
            return self.reply(200, {"model_name": model_name, "id": body.get("id", ""),
                                    "request_id_seen": self.headers.get("x-request-id"),
                                    "outputs": [{"name": "sum", "datatype": "FP64",
                                                 "shape": [len(rows)], "data": [sum(r) for r in rows]}]})
        if self.path == "/v1/models/%s:predict" % model_name:
            return self.reply(200, {"predictions": [sum(r) for r in body["instances"]]})
        if self.path in ("/v1/completions", "/v1/chat/completions") and body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(5):
                event = "data: %s\n\n" % json.dumps({"choices": [{"text": "t%d" % i}], "sent": time.time()})
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event.encode()))
                self.wfile.flush()
                time.sleep(0.2)
            done = b"data: [DONE]\n\n"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
            return
        self.reply(404, {"error": "no " + self.path})

    def log_message(self, fmt, *args):
        print("toy runtime: " + fmt % args, flush=True)


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
