"""ksvtest: helpers shared by ksv's integration tests.

Every test starts real ksv-engine processes on 127.0.0.1 with port 0 (the engine picks a
free port and writes it to STATE_DIR/address), talks HTTP to them with the standard library
only, and stops what it started by PID, even when an assertion fails.

Here: check/finish, Engine (a ksv-engine of the test's own), ksv_cli (the ksv runner),
write_file, stop_engine (an engine ksv started for a node), isvc_yaml and canary_yaml
(manifests), Traffic (clients posting to a model in the background), data helpers.
"""
import atexit
import collections
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRCDIR = os.environ.get("KSV_SRCDIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("KSV_DATA_DIR", os.path.join(SRCDIR, "data"))
ENGINE = os.environ.get("KSV_ENGINE", os.path.join(SRCDIR, "src", "ksv-engine"))
KSV = os.environ.get("KSV_CLI", os.path.join(os.path.dirname(ENGINE), "ksv"))
TOP = os.environ.get("KSV_TOP", os.path.join(os.path.dirname(ENGINE), "ksv-top"))

_procs = []
_tmpdirs = []
failures = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def reexec_in_venv(script, flag, what):
    """Runs the calling test again under the python of the venv that scripts/SCRIPT makes
    (or finds cached) and prints; FLAG in the environment marks the second run. Without the
    venv (no route to PyPI) the test is skipped (77) and says so."""
    if os.environ.get(flag) == "1":
        return
    r = subprocess.run(["sh", os.path.join(SRCDIR, "scripts", script)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=900)
    if r.returncode != 0:
        print("SKIP: the %s venv could not be made:\n" % what + r.stderr[-2000:])
        sys.exit(77)
    os.environ[flag] = "1"
    py = r.stdout.strip()
    os.execv(py, [py] + sys.argv)


def tmpdir(prefix="ksv-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def check(cond, what):
    """Records one checked fact; the test fails at the end if any check failed."""
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def finish():
    if failures:
        print("%d check(s) failed:" % len(failures))
        for f in failures:
            print("  - " + f)
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)


class Engine:
    """A ksv-engine process with its own state dir."""

    def __init__(self, *args, state_dir=None, threads=2, log_level="warn", extra_env=None):
        self.state_dir = state_dir or tmpdir("ksv-engine-")
        self.args = list(args)
        self.threads = threads
        self.log_level = log_level
        self.env = dict(os.environ, **(extra_env or {}))
        self.proc = None
        self.start()

    def start(self):
        addr_file = os.path.join(self.state_dir, "address")
        if os.path.exists(addr_file):
            os.unlink(addr_file)
        cmd = [ENGINE, "--listen", "127.0.0.1:0", "--state-dir", self.state_dir,
               "--threads", str(self.threads), "--log-level", self.log_level] + self.args
        self.log = open(os.path.join(self.state_dir, "engine.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env)
        _procs.append(self.proc)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ksv-engine exited with %d: %s" % (self.proc.returncode, self.log_text()))
            if os.path.exists(addr_file):
                with open(addr_file) as f:
                    text = f.read().strip()
                if text:
                    host, port = text.rsplit(":", 1)
                    self.host, self.port = host, int(port)
                    break
            time.sleep(0.02)
        else:
            raise RuntimeError("ksv-engine did not write its address")
        with open(os.path.join(self.state_dir, "token")) as f:
            self.token = f.read().strip()

    def log_text(self):
        try:
            with open(os.path.join(self.state_dir, "engine.log"), "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def conn(self, timeout=10):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, admin=False, conn=None, timeout=10):
        """Returns (status, headers dict lower-cased, parsed JSON or raw text)."""
        own = conn is None
        c = conn or self.conn(timeout)
        h = dict(headers or {})
        if admin:
            h["Authorization"] = "Bearer " + self.token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw.decode(errors="replace")
            return r.status, hdrs, payload
        finally:
            if own:
                c.close()

    def wait_ready(self, model=None, timeout=20):
        path = "/v2/health/ready" if model is None else "/v2/models/%s/ready" % model
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.request("GET", path)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def wait_applied(self, model, timeout=20):
        """Waits until the model's desired traffic is in effect; returns its admin state."""
        deadline = time.time() + timeout
        state = None
        while time.time() < deadline:
            st, _, state = self.request("GET", "/ksv/v1/models/" + model, admin=True)
            if st == 200 and state.get("traffic_applied"):
                return state
            time.sleep(0.05)
        raise RuntimeError("model %s: traffic not applied in %ss: %s" % (model, timeout, state))

    def revision_settled(self, model, timeout=60):
        """Waits until the model's first revision is no longer loading; returns its state."""
        deadline = time.time() + timeout
        r = None
        while time.time() < deadline:
            st, _, state = self.request("GET", "/ksv/v1/models/" + model, admin=True)
            r = state["revisions"][0] if st == 200 else None
            if r and r["state"] != "loading":
                return r
            time.sleep(0.05)
        return r or {"state": "unknown"}

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()


def run_ksv(env, *args, timeout=120, extra_env=None, drop=()):
    """Runs the ksv CLI with env (plus extra_env, less the names in drop); returns
    (exit code, stdout, stderr), output decoded as UTF-8 with bad bytes replaced."""
    e = dict(env, **(extra_env or {}))
    for k in drop:
        e.pop(k, None)
    r = subprocess.run([KSV] + list(args), capture_output=True, env=e, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def sanitizer_env(work):
    """Under the sanitizer build, the options that send ksv-top's own reports (ASan, LSan at
    exit, UBSan) to files in `work`: inside tmux nobody would see its stderr, and a UBSan
    halt would look like a blank screen. Empty on the plain build."""
    extra = {}
    if os.environ.get("ASAN_OPTIONS"):
        extra["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"] + ":log_path=" + os.path.join(work, "asan")
    if os.environ.get("LSAN_OPTIONS"):
        extra["LSAN_OPTIONS"] = os.environ["LSAN_OPTIONS"]
    if os.environ.get("UBSAN_OPTIONS"):
        extra["UBSAN_OPTIONS"] = os.environ["UBSAN_OPTIONS"] + ":log_path=" + os.path.join(work, "ubsan")
    return extra


def sanitizer_reports(work):
    """The report files sanitizer_env's options left in `work`, each printed (a failed check
    should say where), as a list of names."""
    reports = sorted(f for f in os.listdir(work) if f.startswith(("asan.", "ubsan.")))
    for f in reports:
        with open(os.path.join(work, f), errors="replace") as fh:
            print(fh.read()[:4000])
    return reports


def ksv_cli(env, timeout=120):
    """The ksv(*args) and ksv_json(*args) helpers of a test that runs ksv in env:
    ksv returns (rc, stdout, stderr); ksv_json adds -o json and returns (rc, document), the
    document being {"stdout": ..., "stderr": ...} when the output is not JSON."""
    default_timeout = timeout

    def ksv(*args, timeout=default_timeout, extra_env=None, drop=()):
        return run_ksv(env, *args, timeout=timeout, extra_env=extra_env, drop=drop)

    def ksv_json(*args, timeout=default_timeout):
        rc, out, err = ksv(*args, "-o", "json", timeout=timeout)
        try:
            return rc, json.loads(out)
        except ValueError:
            return rc, {"stdout": out, "stderr": err}

    return ksv, ksv_json


def ksv_cli_merged(env, timeout=120):
    """The ksv(*args) of a test that reads what ksv printed as one text: it returns
    (exit code, stdout + stderr)."""
    default_timeout = timeout

    def ksv(*args, timeout=default_timeout):
        rc, out, err = run_ksv(env, *args, timeout=timeout)
        return rc, out + err

    return ksv


def model_path(name):
    return os.path.join(DATA, "models", name)


def load_json(*parts):
    with open(os.path.join(DATA, *parts)) as f:
        return json.load(f)


def max_abs_diff(a, b):
    fa, fb = flatten(a), flatten(b)
    if len(fa) != len(fb):
        return float("inf")
    return max((abs(x - y) for x, y in zip(fa, fb)), default=0.0)


def flatten(x):
    if isinstance(x, list):
        out = []
        for v in x:
            out.extend(flatten(v))
        return out
    return [x]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def lock_pid(state_dir):
    """The PID of the engine holding STATE_DIR/lock, None when there is none."""
    try:
        with open(os.path.join(state_dir, "lock")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def stop_engine(state_dir, sig=signal.SIGTERM):
    """Signals (SIGTERM unless sig says otherwise) the ksv-engine holding STATE_DIR/lock, if
    one does (an engine ksv started for a node): a test's teardown."""
    pid = lock_pid(state_dir)
    if pid:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def write_file(directory, name, text):
    """Writes text to DIRECTORY/NAME; returns the path."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def isvc_yaml(name, storage_uri, canary_pct=None, namespace=None, annotations=None,
              min_replicas=None, requests=None, limits=None):
    """A KServe InferenceService for an XGBoost model file, as YAML. requests and limits are
    resources as dicts ({"memory": "128Mi"}); each option adds its own line only when given,
    so the lines of a plain one stay where tests that cite FILE:LINE expect them."""
    meta = ["name: %s" % name]
    if namespace:
        meta.append("namespace: %s" % namespace)
    if annotations:
        meta.append("annotations: {%s}" % ", ".join('%s: "%s"' % kv for kv in annotations.items()))
    predictor = ""
    if min_replicas is not None:
        predictor += "    minReplicas: %d\n" % min_replicas
    if canary_pct is not None:
        predictor += "    canaryTrafficPercent: %d\n" % canary_pct
    resources = ", ".join("%s: {%s}" % (kind, ", ".join("%s: %s" % kv for kv in vals.items()))
                          for kind, vals in (("requests", requests), ("limits", limits)) if vals)
    return ("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            "metadata: {%s}\nspec:\n  predictor:\n%s    model:\n"
            "      modelFormat: {name: xgboost}\n      storageUri: %s\n%s"
            % (", ".join(meta), predictor, storage_uri,
               "      resources: {%s}\n" % resources if resources else ""))


def quota_yaml(name, namespace, hard):
    """A Kubernetes ResourceQuota document, one spec.hard line per entry of hard (in order,
    values as given: quote them yourself where YAML would read a number)."""
    return ("apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: %s\n  namespace: %s\n"
            "spec:\n  hard:\n%s" % (name, namespace,
                                   "".join("    %s: %s\n" % kv for kv in hard.items())))


def canary_yaml(target, step_weights, interval="1s", threshold=3, min_requests=5, name=None,
                deadline=None, analysis=(), metrics=()):
    """A Flagger Canary gating the InferenceService `target`, as a YAML document that starts
    with '---' (to follow an InferenceService in one file): request-success-rate of at least
    99 % over min_requests, then `metrics` (flow-style metric lines); `analysis`: more lines
    of spec.analysis; deadline: progressDeadlineSeconds."""
    text = ("---\napiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: %s}\nspec:\n"
            "  targetRef: {apiVersion: serving.kserve.io/v1beta1, kind: InferenceService, "
            "name: %s}\n" % (name or target, target))
    if deadline is not None:
        text += "  progressDeadlineSeconds: %d\n" % deadline
    text += "  analysis:\n    interval: %s\n    threshold: %d\n    stepWeights: [%s]\n" % (
        interval, threshold, ", ".join(str(w) for w in step_weights))
    text += "".join("    %s\n" % line for line in analysis)
    text += ("    metrics:\n    - {name: request-success-rate, thresholdRange: {min: 99}, "
             "minRequests: %d}\n" % min_requests)
    return text + "".join("    - %s\n" % m for m in metrics)


class Traffic:
    """Clients of one model: `clients` threads post body to host:port's
    /v2/models/MODEL/infer over kept-alive connections, each waiting clients/rps seconds
    after an answer (about rps requests a second in all), and count the answers by
    (ksv-revision header, status); a request that failed counts as ("exception", 0)."""

    def __init__(self, host, port, model, body, rps, clients=2):
        self.host, self.port, self.model, self.body = host, port, model, body
        self.pause = clients / float(rps)
        self.stop_ev = threading.Event()
        self.counts = collections.Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self):
        conn = None
        while not self.stop_ev.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                conn.request("POST", "/v2/models/%s/infer" % self.model, body=self.body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                key = (r.getheader("ksv-revision"), r.status)
            except (OSError, http.client.HTTPException):
                key = ("exception", 0)
                if conn:
                    conn.close()
                conn = None
            with self.lock:
                self.counts[key] += 1
            self.stop_ev.wait(self.pause)

    def stop(self):
        """Stops the clients; returns the counts."""
        self.stop_ev.set()
        for t in self.threads:
            t.join(15)
        return collections.Counter(self.counts)
