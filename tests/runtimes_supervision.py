"""External runtimes supervised by the engine (docs/OPERATIONS.md), end to end through the CLI: a
ServingRuntime applied with `ksv apply`, chosen by model format, run as a child process of
a real local engine (tests/data/toy_runtime.py, a real HTTP server that misbehaves on
demand), its output shown by `ksv logs` and ksv-top's detail screen, requests forwarded with the revision as model_version, its output kept, restarted
after kill -9 with ksv_runtime_restarts_total counting it, and every failure a clear error
with the stable revision untouched: unknown format, no command, a command that is missing, a
crash while loading, never ready, garbage (502), a hang (504). The release gate promotes a
healthy external canary and rolls back one whose runtime answers garbage; scale to zero stops
the runtime process and a cold start answers every waiting request. Delete, SIGTERM and kill -9 of
the engine leave no runtime process behind."""
import functools
import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from tmuxterm import Tmux
from ksvtest import (ENGINE, SRCDIR, TOP, Traffic, canary_yaml, check, finish, ksv_cli_merged, lock_pid,
                     stop_engine, tmpdir, write_file)

work = tmpdir("ksv-runtimes-")
node_dir = os.path.join(work, "node")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=ENGINE, USER="tester")
TOY = os.path.join(SRCDIR, "tests", "data", "toy_runtime.py")
model_dir = os.path.join(work, "model")
os.makedirs(model_dir)


ksv = ksv_cli_merged(env)
write = functools.partial(write_file, work)


def runtime_doc(name, mode, fmt="toy", extra=""):
    return """\
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: %s
spec:
  supportedModelFormats:
    - name: %s
      autoSelect: %s
  protocolVersions: [v1, v2, openai]
  containers:
    - name: kserve-container
      command: [%s, %s]
      args: [/mnt/models, "{{.Name}}"]
      env:
        - name: TOY_MODE
          value: %s
      readinessProbe:
        httpGet:
          path: /health
%s""" % (name, fmt, "true" if mode == "ok" else "false", sys.executable, TOY, mode, extra)


def isvc_doc(name, runtime=None, fmt="toy", timeout=None, canary=None, uri=None, min_replicas=None,
             window=None):
    pred = ""
    if min_replicas is not None:
        pred += "    minReplicas: %d\n" % min_replicas
    if timeout:
        pred += "    timeout: %d\n" % timeout
    if canary is not None:
        pred += "    canaryTrafficPercent: %d\n" % canary
    return """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: %s
  annotations:
    ksv.io/rollback-window: "60"
%sspec:
  predictor:
%s    model:
      modelFormat:
        name: %s
%s      storageUri: %s
""" % (name, '    autoscaling.knative.dev/window: "%s"\n' % window if window else "", pred, fmt,
       "      runtime: %s\n" % runtime if runtime else "", uri or model_dir)


CANARY = canary_yaml("gated", [25, 50], threshold=2, min_requests=10, name="gated-gate", deadline=60)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def gated_load():
    """V2 requests to the gated model from two clients at about 100/s (ksvtest.Traffic)."""
    host, port = engine()[0].rsplit(":", 1)
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]})
    return Traffic(host, int(port), "gated", body, rps=100)


def engine():
    with open(os.path.join(node_dir, "address")) as f:
        addr = f.read().strip()
    with open(os.path.join(node_dir, "token")) as f:
        token = f.read().strip()
    return addr, token


def call(method, path, body=None, admin=False, headers=None, timeout=30):
    addr, token = engine()
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=timeout)
    h = dict(headers or {})
    if admin:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {"raw": data.decode("utf-8", "replace")}
    return r.status, parsed, dict(r.getheaders())


def infer(model, rows):
    return call("POST", "/v2/models/%s/infer" % model,
                {"inputs": [{"name": "x", "datatype": "FP64", "shape": [len(rows), len(rows[0])],
                             "data": [v for r in rows for v in r]}]})


def logs(model, rev):
    return call("GET", "/ksv/v1/models/%s/revisions/%s/logs" % (model, rev), admin=True)


def metric(name, model):
    st, body, _ = call("GET", "/metrics")
    text = body.get("raw", "")
    for line in text.splitlines():
        if line.startswith(name + "{") and 'model="%s"' % model in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(cond, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def children_of(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def toy_pids():
    out = subprocess.run(["pgrep", "-f", TOY], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


try:
    rc, out = ksv("node", "add", "local", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add local: " + out.strip())

    # --- a runtime chosen by model format serves through the engine --------------------
    rc, out = ksv("apply", "-f", write("toy.yaml", runtime_doc("toy", "ok") + "---\n" + isvc_doc("toy")))
    check(rc == 0 and "1 runtime(s) applied" in out, "apply a ServingRuntime and a model of its format: " + out.strip())
    st, body, hdr = infer("toy", [[1, 2, 3], [4, 5, 6]])
    check(st == 200 and body.get("outputs", [{}])[0].get("data") == [6, 15],
          "V2 infer forwarded to the runtime: %d %s" % (st, body))
    check(body.get("model_version") == "toy-00001" and body.get("model_name") == "toy",
          "the answer's model_version is the ksv revision: %s" % body.get("model_version"))
    check(hdr.get("ksv-revision") == "toy-00001", "ksv-revision header on a forwarded answer")
    check(body.get("request_id_seen") and body.get("request_id_seen") == hdr.get("x-request-id"),
          "the request id reaches the runtime: %s" % body.get("request_id_seen"))
    st, body, _ = call("POST", "/v1/models/toy:predict", {"instances": [[1, 1], [2, 2]]})
    check(st == 200 and body.get("predictions") == [2, 4], "V1 predict forwarded: %d %s" % (st, body))
    check(metric("ksv_requests_total", "toy") is not None and metric("ksv_requests_total", "toy") >= 2,
          "forwarded requests counted in ksv_requests_total")
    rc, out = ksv("get", "revisions", "toy")
    check(rc == 0 and "toy" in out.split("\n")[1], "ksv get revisions shows the runtime's name:\n" + out)

    st, lg, _ = logs("toy", "toy-00001")
    lines = lg.get("runtime", {}).get("lines", [])
    check(st == 200 and any("toy runtime: mode ok, model toy at %s" % model_dir in l for l in lines),
          "logs: the runtime's own output, with /mnt/models and {{.Name}} substituted")
    check(any("CUDA_VISIBLE_DEVICES=None" not in l and "CUDA_VISIBLE_DEVICES='" in l for l in lines),
          "CUDA_VISIBLE_DEVICES is set from the node's GPU choice")
    check(any("ready after" in l for l in lines), "logs: the readiness probe's success")
    st, _, _ = call("GET", "/ksv/v1/models/toy/revisions/toy-00001/logs")
    check(st == 401, "logs need the admin token")
    rc, out = ksv("logs", "toy")
    check(rc == 0 and "== node local, revision toy-00001" in out and "toy runtime: mode ok" in out,
          "ksv logs MODEL prints the runtime's lines per node:\n" + out[:300])
    rc, out = ksv("logs", "toy", "--revision", "toy-00009")
    check(rc == 1 and "no revision toy-00009" in out, "ksv logs --revision of an unknown one: " + out.strip())
    rc, out = ksv("logs", "toy", "-o", "json")
    try:
        entries = json.loads(out)
    except ValueError:
        entries = []
    check(rc == 0 and entries and entries[0].get("runtime", {}).get("state") == "ready",
          "ksv logs -o json has the supervision state")

    # --- ksv-top's detail screen shows the runtime's last lines --------------------------
    if shutil.which("tmux"):
        term = Tmux("ksvrt")
        try:
            term.start([TOP, "-d", "0.5"], dict(env, LC_ALL="C.UTF-8"), cols=140, lines=40)
            term.wait_for(lambda t: "toy" in t, 15)
            term.keys("/", "toy", "Enter")
            term.wait_for(lambda t: "+junk" not in t, 5)
            term.keys("Enter")
            text = term.wait_for(lambda t: "RUNTIME OUTPUT" in t and "toy runtime:" in t, 15)
            check("RUNTIME OUTPUT  node local  revision toy-00001  ready  restarts 0" in text and
                  "toy runtime:" in text, "ksv-top's detail screen shows the runtime's output:\n" + text)
        finally:
            term.kill()
    else:
        check(False, "tmux is installed (scripts/deps.sh puts it there)")

    # --- kill -9 of the runtime: restarted with backoff, counted ----------------------
    watcher = lg["runtime"]["pid"]
    victims = children_of(watcher)
    check(len(victims) == 1, "one runtime process under its watcher: %s" % victims)
    os.kill(victims[0], signal.SIGKILL)
    st, body, _ = infer("toy", [[1]])
    check(st in (200, 503, 502), "a request while the runtime is down is answered: %d %s" % (st, body))
    ok = wait_for(lambda: infer("toy", [[1, 1]])[0] == 200, 15)
    check(ok, "serves again after the restart")
    check(metric("ksv_runtime_restarts_total", "toy") == 1, "ksv_runtime_restarts_total counts it")
    st, lg, _ = logs("toy", "toy-00001")
    check(any("restarting in 1 s" in l for l in lg["runtime"]["lines"]), "logs say: restarting in 1 s")

    # --- failures: each a clear error, the stable revision untouched --------------------
    rc, out = ksv("apply", "-f", write("nofmt.yaml", isvc_doc("other", fmt="onnx-ish")))
    check(rc != 0 and "no runtime serves model format onnx-ish" in out, "unknown format refused: " + out.strip())
    rc, out = ksv("apply", "-f", write("nocmd.yaml", runtime_doc("toy", "ok").replace(
        "      command: [%s, %s]\n" % (sys.executable, TOY), "      image: toy:1\n")))
    check(rc != 0 and "command: missing" in out, "a runtime without a command refused: " + out.strip())
    rc, out = ksv("apply", "-f", write("noname.yaml", isvc_doc("toy", runtime="no-such-runtime")))
    check(rc != 0 and "runtime no-such-runtime not found" in out, "an unknown runtime name refused: " + out.strip())

    rc, out = ksv("apply", "-f", write("crash.yaml", runtime_doc("toy-crash", "crash-start") + "---\n" +
                                       isvc_doc("toy", runtime="toy-crash", canary=50)))
    check(rc != 0 and "before it became ready" in out and "tensor blk.0 is truncated" in out,
          "a runtime that crashes while loading: revision failed with its last lines: " + out.strip()[-300:])
    st, body, _ = infer("toy", [[2, 2]])
    check(st == 200 and body.get("model_version") == "toy-00001", "the stable revision still serves all traffic")

    rc, out = ksv("apply", "-f", write("missing.yaml", runtime_doc("toy-missing", "ok").replace(
        "command: [%s, %s]" % (sys.executable, TOY), "command: [no-such-binary-ksv]") + "---\n" +
        isvc_doc("toy", runtime="toy-missing", canary=50)))
    check(rc != 0 and "no-such-binary-ksv\" not found" in out, "a missing command: " + out.strip()[-200:])

    t0 = time.time()
    rc, out = ksv("apply", "-f", write("never.yaml", runtime_doc("toy-never", "never-ready",
        extra="      startupProbe:\n        failureThreshold: 2\n        periodSeconds: 1\n") + "---\n" +
        isvc_doc("toy", runtime="toy-never", canary=50)))
    check(rc != 0 and "not ready after 2 s" in out, "never ready: the startupProbe's limit: " + out.strip()[-200:])
    check(time.time() - t0 < 30, "never ready fails within its limit (%.1f s)" % (time.time() - t0))
    st, body, _ = infer("toy", [[3]])
    check(st == 200 and body.get("model_version") == "toy-00001", "the stable revision is untouched")

    rc, out = ksv("apply", "-f", write("junk.yaml", runtime_doc("toy-garbage", "garbage") + "---\n" +
                                       isvc_doc("junk", runtime="toy-garbage")))
    check(rc == 0, "a runtime that answers garbage still starts: " + out.strip())
    st, body, _ = infer("junk", [[1]])
    check(st == 502 and "not a JSON object" in body.get("error", ""), "garbage answer: 502 JSON error: %d %s" % (st, body))
    st, errs, _ = call("GET", "/ksv/v1/models/junk/errors", admin=True)
    check(any(e["status"] == 502 for e in errs.get("errors", [])), "the 502 is in the model's error ring")

    rc, out = ksv("apply", "-f", write("slow.yaml", runtime_doc("toy-hang", "hang") + "---\n" +
                                       isvc_doc("slow", runtime="toy-hang", timeout=2)))
    t0 = time.time()
    st, body, _ = infer("slow", [[1]])
    took = time.time() - t0
    check(st == 504 and "did not answer within 2000 ms" in body.get("error", ""),
          "a hung runtime: 504 JSON error: %d %s" % (st, body))
    check(1.5 < took < 10, "the 504 comes at the model's timeout (%.1f s)" % took)

    # --- the release gate over an external runtime ---------------------------------------
    model_dir2 = os.path.join(work, "model-2")
    os.makedirs(model_dir2)
    rc, out = ksv("apply", "-f", write("gated1.yaml", isvc_doc("gated")))
    check(rc == 0, "gated: the stable revision on the toy runtime: " + out.strip())
    load = gated_load()
    rc, out = ksv("apply", "-f", write("gated2.yaml", isvc_doc("gated", uri=model_dir2) + CANARY), "--wait",
                  timeout=180)
    counts = load.stop()
    check(rc == 0 and "Succeeded" in out, "a healthy external canary: the gate promotes it (apply --wait): " +
          out.strip()[-300:])
    check(sum(n for (r, st), n in counts.items() if st != 200) == 0 and counts[("gated-00002", 200)] > 0 and
          counts[("gated-00001", 200)] > 0, "both runtimes served during the steps, nothing failed: %s" % dict(counts))
    load = gated_load()
    rc, out = ksv("apply", "-f", write("gated3.yaml", isvc_doc("gated", runtime="toy-garbage") + CANARY),
                  "--wait", timeout=180)
    counts = load.stop()
    check(rc == 1 and "Failed" in out and "request-success-rate" in out,
          "a canary whose runtime answers garbage: the gate rolls it back (exit 1): " + out.strip()[-300:])
    bad = {k: n for k, n in counts.items() if k[1] != 200}
    check(bad and all(r == "gated-00003" and st == 502 for r, st in bad),
          "only the bad canary's requests failed, with 502: %s" % dict(counts))
    st, body, _ = infer("gated", [[5, 5]])
    check(st == 200 and body.get("model_version") == "gated-00002" and body["outputs"][0]["data"] == [10],
          "the promoted external revision serves all traffic after the rollback")

    # --- scale to zero stops the runtime process; a cold start loses no request -------------
    rc, out = ksv("apply", "-f", write("idle.yaml", isvc_doc("idle", min_replicas=0, window="2s")))
    check(rc == 0, "idle: an external revision with minReplicas 0 and a 2 s window: " + out.strip())
    st, lg, _ = logs("idle", "idle-00001")
    first = children_of(lg["runtime"]["pid"]) if st == 200 else []
    check(len(first) == 1, "its runtime process runs: %s" % first)

    def idle_state():
        st, m, _ = call("GET", "/ksv/v1/models/idle", admin=True)
        return m["revisions"][0]["state"] if st == 200 and m.get("revisions") else None

    check(wait_for(lambda: idle_state() == "scaled-to-zero", 30), "idle scales to zero: %s" % idle_state())
    check(wait_for(lambda: not any(alive(p) for p in first), 15),
          "scaled to zero, its runtime process is stopped (was %s)" % first)
    results = []
    threads = [threading.Thread(daemon=True, target=lambda i=i: results.append(infer("idle", [[i, 1]])))
               for i in range(20)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    answers = sorted(b["outputs"][0]["data"][0] for st, b, _ in results if st == 200)
    check(answers == [i + 1 for i in range(20)],
          "20 concurrent requests across the cold start: all 200 with the runtime's answers (%.1f s): %s"
          % (time.time() - t0, [st for st, _, _ in results]))
    st, lg, _ = logs("idle", "idle-00001")
    again = children_of(lg["runtime"]["pid"]) if st == 200 else []
    check(idle_state() == "ready" and len(again) == 1 and again != first,
          "a fresh runtime process serves it: %s" % again)

    # --- a downloaded model: /mnt/models is the engine's cached copy ----------------------
    served = os.path.join(work, "served")
    os.makedirs(served)
    with open(os.path.join(served, "weights.bin"), "w") as f:
        f.write("toy weights v7 " + "x" * 1000)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        Quiet, directory=served))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        uri = "http://127.0.0.1:%d/weights.bin" % srv.server_address[1]
        rc, out = ksv("apply", "-f", write("remote.yaml", isvc_doc("remote", uri=uri)))
        check(rc == 0, "an external revision whose model is downloaded (http): " + out.strip())
        st, lg, _ = logs("remote", "remote-00001")
        lines = lg.get("runtime", {}).get("lines", []) if st == 200 else []
        at = [l for l in lines if "mode ok, model remote at " in l]
        check(at and at[0].split(" at ", 1)[1].startswith(os.path.join(node_dir, "cache")) and
              "/weights.bin," in at[0], "/mnt/models is the file in the engine's cache: %s" % at)
        check(any("the model file begins 'toy weights v7" in l for l in lines),
              "and the runtime reads the downloaded bytes")
        st, body, _ = infer("remote", [[1, 2]])
        check(st == 200 and body["outputs"][0]["data"] == [3], "and serves")
    finally:
        srv.shutdown()
        srv.server_close()

    # --- history -----------------------------------------------------------------------
    rc, out = ksv("history")
    check(rc == 0 and "apply-runtime" in out and "toy-garbage" in out, "history records applied runtimes")

    # --- stop: delete, engine SIGTERM, engine kill -9 ----------------------------------
    before = toy_pids()
    check(len(before) >= 3, "toy, junk and slow runtimes run: %s" % before)
    st, lg, _ = logs("toy", "toy-00001")
    toy_pid = children_of(lg["runtime"]["pid"])
    rc, out = ksv("delete", "toy")
    check(rc == 0, "delete toy: " + out.strip())
    check(wait_for(lambda: not any(alive(p) for p in toy_pid), 15), "delete stops the runtime process")

    engine_pid = lock_pid(node_dir)
    running = toy_pids()
    os.kill(engine_pid, signal.SIGKILL)
    check(wait_for(lambda: not any(alive(p) for p in running), 10),
          "kill -9 of the engine leaves no runtime process behind (was %s)" % running)
finally:
    stop_engine(node_dir, signal.SIGKILL)
    for p in toy_pids():
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
finish()
