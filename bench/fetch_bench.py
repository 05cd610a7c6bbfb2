"""bench/fetch_bench.py [MB] [RUNS] [BUILD_DIR]: a model download into ksv-engine's cache
against curl writing the same bytes to a file, side by side, from one HTTP server on
127.0.0.1 (Python's http.server, threaded). Measures, per run, the wall time of
  curl -s -o FILE URL                                   (the peer: bytes to disk)
  ksv-engine --fetch URL --state-dir DIR                (download, sha256, into the cache)
  ksv-engine --fetch URL --state-dir DIR  (again)       (a cache hit: re-checked, no network)
and prints the medians. docs/BENCHMARKS.md, "Fetching a model into the cache"."""
import functools
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

mb = int(sys.argv[1]) if len(sys.argv) > 1 else 200
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
build = sys.argv[3] if len(sys.argv) > 3 else "build"
engine = os.path.join(build, "src", "ksv-engine")
work = tempfile.mkdtemp(prefix="ksv-fetch-bench-")
try:
    with open(os.path.join(work, "model.json"), "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=work)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/model.json" % server.server_address[1]

    def timed(argv):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t

    curl, cold, warm = [], [], []
    for i in range(runs):
        state = os.path.join(work, "state-%d" % i)
        curl.append(timed(["curl", "-s", "-o", os.path.join(work, "curl.out"), url]))
        fetch = [engine, "--fetch", url, "--state-dir", state, "--log-level", "warn"]
        cold.append(timed(fetch))
        warm.append(timed(fetch))
        shutil.rmtree(state)
    med = statistics.median
    print("%d MiB, %d runs, medians:" % (mb, runs))
    print("  curl -o FILE               %6.2f s  %6.0f MiB/s" % (med(curl), mb / med(curl)))
    print("  ksv-engine --fetch (cold)  %6.2f s  %6.0f MiB/s  (x%.2f of curl)"
          % (med(cold), mb / med(cold), med(cold) / med(curl)))
    print("  ksv-engine --fetch (hit)   %6.2f s  (re-hashing the cached copy)" % med(warm))
    server.shutdown()
finally:
    shutil.rmtree(work, ignore_errors=True)
