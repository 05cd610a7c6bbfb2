"""runtime_proxy: what forwarding through ksv-engine costs per request, against the same
external runtime called directly, in one run (docs/BENCHMARKS.md).

Starts one local engine (through `ksv node add`), serves an sklearn model on the shipped
MLServer runtime, then alternates blocks of V2 requests with a fixed body: straight to
MLServer's port (read from the revision's logs API) and through the engine. Each side uses
one keep-alive connection and the same client code, sequentially, so the difference of the
medians is the engine's cost per request (routing, the forward through the HTTP client,
the model_version rewrite, metrics). With --llm GGUF it also streams chat completions from
the shipped llama.cpp runtime, direct and through ksv, and compares time to first token and
tokens per second.

    python3 bench/runtime_proxy.py [--requests N] [--llm PATH.gguf]
Needs build/src (KSV_ENGINE, KSV_CLI) and scripts/runtimes.sh install."""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
engine = os.environ.get("KSV_ENGINE", os.path.join(top, "build", "src", "ksv-engine"))
ksv_bin = os.environ.get("KSV_CLI", os.path.join(os.path.dirname(engine), "ksv"))
ap = argparse.ArgumentParser()
ap.add_argument("--requests", type=int, default=2000)
ap.add_argument("--llm", help="a GGUF file to compare streaming through ksv and direct")
args = ap.parse_args()

work = tempfile.mkdtemp(prefix="ksv-bench-proxy-")
node_dir = os.path.join(work, "node")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=engine)
venv = subprocess.run(["sh", os.path.join(top, "scripts", "runtimes.sh"), "path"], capture_output=True,
                      text=True).stdout.strip()


def ksv(*a):
    r = subprocess.run([ksv_bin] + list(a), capture_output=True, text=True, env=env, timeout=600)
    if r.returncode:
        sys.exit("ksv %s: %s" % (" ".join(a), r.stdout + r.stderr))
    return r.stdout


def admin(path):
    with open(os.path.join(node_dir, "address")) as f:
        addr = f.read().strip()
    with open(os.path.join(node_dir, "token")) as f:
        token = f.read().strip()
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=30)
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    return addr, json.loads(c.getresponse().read())


def timed_block(host, port, path, body, n):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.connect()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        out.append(time.perf_counter() - t)
        if r.status != 200:
            sys.exit("%s:%d%s answered %d" % (host, port, path, r.status))
    c.close()
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def stream_once(host, port, path, body):
    """Time to the first content chunk and generated chunks per second after it."""
    s = socket.create_connection((host, port))
    data = json.dumps(body).encode()
    t0 = time.perf_counter()
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s" % (path.encode(), len(data), data))
    first = last = None
    chunks = 0
    buf = b""
    while True:
        got = s.recv(65536)
        if not got:
            break
        buf += got
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if b'"content":"' in event and b'"content":""' not in event:
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
    s.close()
    return (first - t0, (chunks - 1) / (last - first) if chunks > 1 and last > first else 0.0)


try:
    subprocess.run([os.path.join(venv, "bin", "python"), os.path.join(top, "tests", "data", "train_tabular.py"),
                    work], check=True, capture_output=True)
    ksv("node", "add", "local", "local", "--engine-state-dir", node_dir)
    with open(os.path.join(work, "m.yaml"), "w") as f:
        f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: sk}\n"
                "spec:\n  predictor:\n    model:\n      modelFormat: {name: sklearn}\n"
                "      storageUri: %s/sklearn\n" % work)
    ksv("apply", "-f", os.path.join(work, "m.yaml"), "--timeout", "300")
    addr, logs = admin("/ksv/v1/models/sk/revisions/sk-00001/logs")
    ehost, eport = addr.rsplit(":", 1)
    rport = logs["runtime"]["port"]
    X = json.load(open(os.path.join(work, "expected.json")))["X"][:4]
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [4, 4],
                                   "data": [v for r in X for v in r]}]}).encode()
    direct, via = [], []
    block = max(50, args.requests // 10)
    timed_block("127.0.0.1", rport, "/v2/models/sk/infer", body, 50)  # warm both
    timed_block(ehost, int(eport), "/v2/models/sk/infer", body, 50)
    for _ in range(args.requests // block):
        direct += timed_block("127.0.0.1", rport, "/v2/models/sk/infer", body, block)
        via += timed_block(ehost, int(eport), "/v2/models/sk/infer", body, block)
    load = os.getloadavg()[0]
    print("MLServer sklearn, %d sequential V2 requests each side, alternating blocks of %d "
          "(load average %.1f on %d CPUs)" % (len(direct), block, load, os.cpu_count()))
    print("%-22s %9s %9s %9s" % ("", "p50 ms", "p90 ms", "p99 ms"))
    for name, xs in (("MLServer direct", direct), ("through ksv-engine", via)):
        print("%-22s %9.3f %9.3f %9.3f" % (name, pct(xs, .5) * 1e3, pct(xs, .9) * 1e3, pct(xs, .99) * 1e3))
    print("engine overhead per request: p50 %+.3f ms (%.1f%% of direct)" %
          ((pct(via, .5) - pct(direct, .5)) * 1e3, 100 * (pct(via, .5) / pct(direct, .5) - 1)))

    if args.llm:
        with open(os.path.join(work, "llm.yaml"), "w") as f:
            f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: chat}\n"
                    "spec:\n  predictor:\n    model:\n      modelFormat: {name: gguf}\n"
                    "      storageUri: %s\n" % os.path.abspath(args.llm))
        ksv("apply", "-f", os.path.join(work, "llm.yaml"), "--timeout", "300")
        _, logs = admin("/ksv/v1/models/chat/revisions/chat-00001/logs")
        lport = logs["runtime"]["port"]
        # No prompt cache (llama.cpp would answer the second of a pair from it), and the
        # order alternates so neither side always runs first.
        req = {"model": "chat", "stream": True, "max_tokens": 128, "temperature": 0,
               "cache_prompt": False, "messages": [{"role": "user", "content": "tell me a story"}]}
        rows = {"llama-server direct": [], "through ksv-engine": []}
        sides = [("llama-server direct", "127.0.0.1", lport, "/v1/chat/completions"),
                 ("through ksv-engine", ehost, int(eport), "/openai/v1/chat/completions")]
        for i in range(20):
            for name, host, port, path in (sides if i % 2 == 0 else sides[::-1]):
                rows[name].append(stream_once(host, port, path, req))
        print("\nllama.cpp, tiny GGUF, 20 streamed chat completions of 128 tokens each side, alternating")
        print("%-22s %12s %12s" % ("", "TTFT p50 ms", "tokens/s p50"))
        for name, xs in rows.items():
            print("%-22s %12.2f %12.0f" % (name, statistics.median(t for t, _ in xs) * 1e3,
                                           statistics.median(r for _, r in xs)))
finally:
    out = subprocess.run(["pgrep", "-f", "state-dir " + node_dir], capture_output=True, text=True).stdout
    for pid in out.split():
        os.kill(int(pid), signal.SIGTERM)
