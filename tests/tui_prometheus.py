"""ksv-top --prometheus against a real Prometheus (Debian's package) that scrapes a real
ksv-engine every second: a local node serving fraud (ksv node add + ksv apply, so the
database knows the model), Prometheus started on a free port with its own config and TSDB,
25 s of 40 requests/s from `ksv load`. `ksv-top --prometheus URL --once -o json` must show
fraud (model and revision rows) with QPS within 30% of the driven rate and ERR% 0 while the
load runs, and, once the load ended and Prometheus scraped its last counters, a P99 within
25% of the P99 of the engine's own fine histogram over the same requests (/ksv/v1/histograms,
the difference between before and after the load, decoded here from the documented log2x64
scheme). Also: a bad URL is refused at start, a Prometheus that is not there gives "no data"
plus a message (not a crash), and in tmux the header names the Prometheus source. Everything
started is stopped by PID. Skips (77) only when the prometheus binary is missing."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

from ksvtest import ksv_cli, DATA, ENGINE, KSV, TOP, check, finish, free_port, lock_pid, tmpdir

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
if not os.access(PROMETHEUS, os.X_OK):
    print("prometheus not installed: skipping")
    sys.exit(77)

RPS = 40
work = tmpdir("ksv-prom-")
node_dir = os.path.join(work, "node-a")
db = os.path.join(work, "ksv.db")
env = dict(os.environ, KSV_DB=db, XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE,
           USER="tester", LC_ALL="C.UTF-8")
socket_name = "ksvprom%d" % os.getpid()


ksv, _ = ksv_cli(env)


def top_once(url, timeout=60):
    r = subprocess.run([TOP, "--prometheus", url, "--once", "-o", "json"], capture_output=True,
                       text=True, env=env, timeout=timeout)
    try:
        doc = json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        doc = None
    return r, doc


def http_get(port, path, headers=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def prom_query(port, q):
    st, body = http_get(port, "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
    doc = json.loads(body)
    return doc["data"]["result"] if st == 200 and doc.get("status") == "success" else None


def wait(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.25)
    return None


def fine_snapshot(addr_port, token):
    """{fine bucket index: count} of fraud's revisions, from the engine's admin API."""
    st, body = http_get(addr_port, "/ksv/v1/histograms",
                        headers={"Authorization": "Bearer " + token})
    counts = {}
    min_exp = None
    for s in json.loads(body)["series"]:
        if s["model"] != "fraud":
            continue
        h = s["histogram"]
        assert h["scheme"] == "log2x64"
        min_exp = h["min_exp"]
        for i, c in h["buckets"]:
            counts[i] = counts.get(i, 0) + c
    return counts, min_exp


def fine_quantile(counts, min_exp, q):
    """The log2x64 scheme of docs/API.md and src/common/histogram.h: index 1 + 64*(e-min) + j
    covers (2^e*(1+j/64), 2^e*(1+(j+1)/64)]; rank q*n, linear inside the bucket."""
    n = sum(counts.values())
    if n == 0:
        return None
    rank = q * n
    cum = 0
    for i in sorted(counts):
        c = counts[i]
        if c <= 0:
            continue
        if cum + c >= rank:
            e, j = min_exp + (i - 1) // 64, (i - 1) % 64
            lo, hi = 2.0 ** e * (1 + j / 64), 2.0 ** e * (1 + (j + 1) / 64)
            return lo + (hi - lo) * (rank - cum) / c
        cum += c
    return None


def tmux(*args):
    r = subprocess.run(["tmux", "-L", socket_name, "-f", "/dev/null"] + list(args),
                       capture_output=True, text=True)
    return r.stdout


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


engine_pid = None
prom = None
load = None
tmux_started = False
try:
    rc, out, err = ksv("node", "add", "a", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add a local: " + out + err)
    engine_pid = lock_pid(node_dir)
    rc, out, err = ksv("apply", "-f", os.path.join(DATA, "manifests", "fraud.yaml"))
    check(rc == 0, "apply fraud.yaml: " + out + err)
    with open(os.path.join(node_dir, "address")) as f:
        engine_addr = f.read().strip()
    engine_port = int(engine_addr.rsplit(":", 1)[1])
    with open(os.path.join(node_dir, "token")) as f:
        token = f.read().strip()
    ready = wait(lambda: http_get(engine_port, "/v2/models/fraud/ready")[0] == 200, 30)
    check(bool(ready), "the engine serves fraud")

    # A Prometheus of our own: 1 s scrapes of the engine, its TSDB in the temp dir.
    prom_port = free_port()
    prom_dir = os.path.join(work, "prometheus")
    os.makedirs(prom_dir)
    with open(os.path.join(prom_dir, "prom.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: ksv\n    static_configs:\n"
                "      - targets: ['%s']\n" % engine_addr)
    prom_log = open(os.path.join(prom_dir, "prometheus.log"), "wb")
    prom = subprocess.Popen([PROMETHEUS, "--config.file=" + os.path.join(prom_dir, "prom.yml"),
                             "--storage.tsdb.path=" + os.path.join(prom_dir, "data"),
                             "--web.listen-address=127.0.0.1:%d" % prom_port,
                             "--log.level=warn"],
                            stdout=prom_log, stderr=prom_log)
    prom_url = "http://127.0.0.1:%d" % prom_port
    up = wait(lambda: prom.poll() is None and
              http_get(prom_port, "/-/ready")[0] == 200 and
              any(r["value"][1] == "1" for r in prom_query(prom_port, 'up{job="ksv"}') or []), 60)
    if not check(bool(up), "Prometheus is ready and scrapes the engine (up == 1)"):
        with open(os.path.join(prom_dir, "prometheus.log"), "rb") as f:
            print(f.read().decode(errors="replace")[-2000:])
        sys.exit(1)

    # Load: 40 requests/s for 25 s. ksv-top asks Prometheus twice:
    #  - after 13 s, while the load runs: the QPS over its 10 s rate window is the driven rate;
    #  - after the load ended and Prometheus scraped the engine's final counters: the P99 over
    #    its 60 s latency window then covers exactly the requests of the load (the window
    #    reaches back before the load's first request, whose counters were all 0), the same set
    #    the oracle takes from the engine's fine histogram (before -> after). Asking while the
    #    load runs would compare two different sets of requests: the P99 of ~500 requests is
    #    their 5th slowest, and one slow request more or less in either set moved it by 70%.
    before, min_exp = fine_snapshot(engine_port, token)
    t0 = time.time()
    load = subprocess.Popen([KSV, "load", "fraud", "--rps", str(RPS), "--duration", "25"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(13)
    r, doc = top_once(prom_url)
    t1 = time.time()
    mid, _ = fine_snapshot(engine_port, token)
    check(r.returncode == 0 and doc is not None,
          "ksv-top --prometheus --once -o json prints a snapshot (rc %d, %s)" % (r.returncode,
                                                                                r.stderr.strip()))
    driven = sum(mid.get(i, 0) - before.get(i, 0) for i in mid) / (t1 - t0)
    check(abs(driven - RPS) <= 0.15 * RPS,
          "the engine saw the driven rate: %.1f/s (target %d/s)" % (driven, RPS))
    if doc:
        check(doc.get("source") == "prometheus" and doc.get("prometheus") == prom_url,
              "the snapshot says its figures come from Prometheus")
        check(not doc.get("error"), "no error in the snapshot: %s" % doc.get("error"))
        fraud = next((m for m in doc.get("models", []) if m["name"] == "fraud"), None)
        check(fraud is not None, "the snapshot lists fraud (from the database)")
        if fraud:
            qps, errp = fraud["qps"], fraud["error_pct"]
            print("fraud via Prometheus under load: qps %s err %s%%" % (qps, errp))
            check(isinstance(qps, (int, float)) and abs(qps - RPS) <= 0.3 * RPS,
                  "QPS %s within 30%% of the driven %d/s" % (qps, RPS))
            check(errp == 0, "ERR%% is 0 (got %s)" % errp)
            revs = fraud.get("revisions", [])
            rev = revs[0] if revs else {}
            check(len(revs) == 1 and isinstance(rev.get("qps"), (int, float)) and
                  abs(rev["qps"] - qps) <= 0.05 * RPS and rev.get("error_pct") == 0,
                  "the revision row has the same rates: %s" % rev)

    # The screen: the header names the source; fraud's row has a QPS with one decimal.
    if shutil.which("tmux"):
        cmd = "env KSV_DB=%s XDG_STATE_HOME=%s LC_ALL=C.UTF-8 TERM=tmux-256color %s -d 1 " \
              "--prometheus %s" % (db, env["XDG_STATE_HOME"], TOP, prom_url)
        tmux("new-session", "-d", "-s", "top", "-x", "100", "-y", "30", cmd)
        tmux_started = True
        top_pid = int(tmux("display-message", "-p", "-t", "top", "#{pane_pid}").strip() or 0)
        want_header = "[prom 127.0.0.1:%d]" % prom_port

        def screen_ok():
            t = tmux("capture-pane", "-p", "-t", "top")
            return t if want_header in t and re.search(r"fraud .* [0-9]+\.[0-9] ", t) else None
        text = wait(screen_ok, 15) or tmux("capture-pane", "-p", "-t", "top")
        check(want_header in text, "the header names the Prometheus source")
        check(re.search(r"fraud .* [0-9]+\.[0-9] ", text) is not None,
              "fraud's row shows a live QPS read from Prometheus")
        if not screen_ok():
            print(text)
        tmux("send-keys", "-t", "top", "q")
        gone = wait(lambda: top_pid and not pid_alive(top_pid), 10)
        check(bool(gone), "q ends ksv-top")
    else:
        print("tmux not installed: the screen check is left out")

    load.wait(30)
    after, _ = fine_snapshot(engine_port, token)
    delta = {i: after.get(i, 0) - before.get(i, 0) for i in after}
    total = sum(delta.values())
    # Prometheus has the final counters once its sum of fraud's counts equals the engine's.
    final = wait(lambda: any(float(x["value"][1]) == sum(after.values()) for x in prom_query(
        prom_port, 'sum(ksv_request_duration_seconds_count{model="fraud"})') or []), 20)
    check(bool(final), "Prometheus scraped the counters the load left (%d requests)" % total)
    r, doc = top_once(prom_url)
    age = time.time() - t0
    check(age < 55, "the latency window (60 s) still reaches back before the load (%.0f s)" % age)
    oracle_p99_ms = (fine_quantile(delta, min_exp, 0.99) or 0) * 1000
    oracle_p50_ms = (fine_quantile(delta, min_exp, 0.5) or 0) * 1000
    fraud = next((m for m in (doc or {}).get("models", []) if m["name"] == "fraud"), None)
    check(r.returncode == 0 and fraud is not None,
          "after the load: a snapshot that lists fraud (rc %d, %s)" % (r.returncode,
                                                                      r.stderr.strip()))
    if fraud:
        p99, p50 = fraud["p99_ms"], fraud["p50_ms"]
        print("fraud via Prometheus, the whole load: p50 %s ms p99 %s ms; engine's fine "
              "histogram (%d requests): p50 %.3f ms p99 %.3f ms" % (p50, p99, total,
                                                                     oracle_p50_ms, oracle_p99_ms))
        check(isinstance(p99, (int, float)) and p99 > 0 and oracle_p99_ms > 0 and
              abs(p99 - oracle_p99_ms) <= 0.25 * oracle_p99_ms,
              "P99 %s ms within 25%% of the engine's fine-histogram P99 %.3f ms" %
              (p99, oracle_p99_ms))
        check(isinstance(p50, (int, float)) and p50 > 0 and p50 <= p99,
              "P50 %s ms is positive and at most P99" % p50)
        revs = fraud.get("revisions", [])
        rev = revs[0] if revs else {}
        check(len(revs) == 1 and isinstance(rev.get("p99_ms"), (int, float)) and
              abs(rev["p99_ms"] - oracle_p99_ms) <= 0.25 * oracle_p99_ms,
              "the revision row has the same P99: %s" % rev)
    # A Prometheus that is not there: "no data" and a message, promptly, never a crash.
    dead = "http://127.0.0.1:%d" % free_port()
    started = time.time()
    r, doc = top_once(dead)
    fraud = next((m for m in (doc or {}).get("models", []) if m["name"] == "fraud"), None)
    check(r.returncode == 0 and doc is not None and "prometheus" in (doc.get("error") or "") and
          fraud is not None and fraud["qps"] is None and fraud["p99_ms"] is None,
          "an unreachable Prometheus: figures are null, the error says why (%s)" %
          (doc or {}).get("error"))
    check(time.time() - started < 20, "and the snapshot still comes promptly")
    # A URL that cannot be a Prometheus base URL is refused at start.
    for bad in ("127.0.0.1:9090", "ftp://127.0.0.1/", "http://127.0.0.1:9090/?q=1", ""):
        r = subprocess.run([TOP, "--prometheus", bad, "--once", "-o", "json"],
                           capture_output=True, text=True, env=env, timeout=30)
        check(r.returncode != 0 and "--prometheus" in r.stderr and not r.stdout,
              "--prometheus %r is refused: %s" % (bad, r.stderr.strip()))
finally:
    if tmux_started:
        tmux("kill-server")
    if load and load.poll() is None:
        load.kill()
        load.wait()
    if prom and prom.poll() is None:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
    if engine_pid and pid_alive(engine_pid):
        os.kill(engine_pid, signal.SIGTERM)
        for _ in range(100):
            if not pid_alive(engine_pid):
                break
            time.sleep(0.1)
        else:
            os.kill(engine_pid, signal.SIGKILL)

check(prom is None or prom.poll() is not None, "Prometheus stopped")
check(engine_pid is None or not pid_alive(engine_pid), "the engine stopped")
finish()
