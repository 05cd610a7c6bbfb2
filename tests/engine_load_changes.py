"""ksv-engine under steady load while the admin API changes the model: 4 keep-alive clients
post to churn while a scenario adds a canary, moves traffic 10/50/100%, rolls back, removes a
revision, adds another with a shared booster pool, shortens and restores the rollback window,
and deletes and re-creates the model. No request may fail outside the delete phase, every
answer must be the one XGBoost gives for the revision named in its ksv-revision header, and
each applied split must show in the shares. Finally SIGTERM under load: exit 0 within 10 s,
every request either answered 200 or refused at the connection, never a 5xx."""
import collections
import http.client
import json
import signal
import threading
import time

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path

V1 = "file://" + model_path("churn-v1")
V2 = model_path("churn-v2")
BODY = json.dumps(load_json("requests", "churn-v1.json"))
WANT_V1 = load_json("expected", "churn-v1.json")["data"]
WANT_V2 = load_json("expected", "churn-v2.json")["data"]
EXPECTED = {"churn-00001": WANT_V1, "churn-00002": WANT_V2, "churn-00003": WANT_V2}
CLIENTS = 4
STEP_MIN_S, STEP_MIN_SAMPLES, STEP_MAX_S = 0.5, 300, 4.0


def rev(name, uri, **settings):
    r = {"name": name, "runtime": "ksv-xgboost", "storage_uri": uri}
    if settings:
        r["settings"] = settings
    return r


R1, R2, R3 = rev("churn-00001", V1), rev("churn-00002", V2), rev("churn-00003", V2, booster_pool="shared")

eng = Engine(threads=2)


class Load:
    """CLIENTS threads, each with its own keep-alive connection, posting until stopped. Each
    answer is counted under the phase current when its request was sent; set_phase waits for
    the requests of earlier phases to finish, so a phase's answers all saw its state."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state = (0, None)                      # (generation, phase name)
        self.started = [None] * CLIENTS              # generation of each client's request
        self.stop = threading.Event()
        self.counts = [collections.Counter() for _ in range(CLIENTS)]
        self.wrong = [[] for _ in range(CLIENTS)]      # answers whose numbers are wrong
        self.errors = [collections.Counter() for _ in range(CLIENTS)]  # exceptions by phase
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def set_phase(self, name):
        with self.lock:
            gen = self.state[0] + 1
            self.state = (gen, name)
        deadline = time.time() + 15
        while any(g is not None and g != gen for g in self.started) and time.time() < deadline:
            time.sleep(0.001)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def run(self, i):
        conn = http.client.HTTPConnection(eng.host, eng.port, timeout=10)
        while not self.stop.is_set():
            with self.lock:
                gen, phase = self.state
                self.started[i] = gen
            try:
                conn.request("POST", "/v2/models/churn/infer", body=BODY,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                raw = r.read()
                status, revision = r.status, r.getheader("ksv-revision")
            except (OSError, http.client.HTTPException) as e:
                self.started[i] = None
                conn.close()
                self.errors[i][(phase, type(e).__name__)] += 1
                if phase == "sigterm":
                    time.sleep(0.01)
                continue
            self.started[i] = None
            self.counts[i][(phase, status, revision)] += 1
            if status == 200:
                try:
                    data = json.loads(raw)["outputs"][0]["data"]
                    ok = max_abs_diff(data, EXPECTED.get(revision, [])) <= 1e-6
                except (ValueError, KeyError, IndexError, TypeError):
                    ok = False
                if not ok:
                    self.wrong[i].append((phase, revision, raw[:200]))
        conn.close()

    def total(self):
        out = collections.Counter()
        for c in self.counts:
            out.update(c)
        return out

    def samples(self, phase):
        return sum(n for (p, _, _), n in self.total().items() if p == phase)


def admin(method, path, body=None):
    st, _, resp = eng.request(method, path, body, admin=True)
    if st not in (200, 202):
        raise RuntimeError("%s %s: %s %s" % (method, path, st, resp))
    return resp


load = Load()
steps = []   # (phase name, wanted split)


def run_step(name, split, change):
    """Applies a change, waits until it serves, then lets the load run in that state."""
    load.set_phase(None)
    change()
    state = eng.wait_applied("churn")
    eff = {k: v for k, v in state["effective_traffic"].items() if v}
    check(eff == {k: v for k, v in split.items() if v},
          "%s: effective traffic %s" % (name, eff))
    load.set_phase(name)
    t0 = time.time()
    while time.time() - t0 < STEP_MAX_S and (time.time() - t0 < STEP_MIN_S or
                                             load.samples(name) < STEP_MIN_SAMPLES):
        time.sleep(0.05)
    load.set_phase(None)
    steps.append((name, split))


def put(revisions, traffic=None, **extra):
    body = {"revisions": revisions}
    if traffic:
        body["traffic"] = traffic
    body.update(extra)
    return lambda: admin("PUT", "/ksv/v1/models/churn", body)


def traffic(split):
    return lambda: admin("PUT", "/ksv/v1/models/churn/traffic", {"traffic": split})


admin("PUT", "/ksv/v1/models/churn", {"revisions": [R1]})
eng.wait_applied("churn")
load.start()
t_start = time.time()
run_step("one revision", {"churn-00001": 100}, lambda: None)
run_step("canary 10%", {"churn-00001": 90, "churn-00002": 10},
         put([R1, R2], {"churn-00001": 90, "churn-00002": 10}))
run_step("canary 50%", {"churn-00001": 50, "churn-00002": 50},
         traffic({"churn-00001": 50, "churn-00002": 50}))
run_step("canary 100%", {"churn-00001": 0, "churn-00002": 100},
         traffic({"churn-00001": 0, "churn-00002": 100}))
run_step("rollback", {"churn-00001": 100, "churn-00002": 0},
         traffic({"churn-00001": 100, "churn-00002": 0}))
run_step("churn-00002 removed", {"churn-00001": 100}, put([R1]))
run_step("churn-00003 shared pool 30%", {"churn-00001": 70, "churn-00003": 30},
         put([R1, R3], {"churn-00001": 70, "churn-00003": 30}))
run_step("rollback window 1 s", {"churn-00001": 70, "churn-00003": 30},
         put([R1, R3], {"churn-00001": 70, "churn-00003": 30}, rollback_window_s=1))
run_step("rollback window back to 600 s", {"churn-00001": 70, "churn-00003": 30},
         put([R1, R3], {"churn-00001": 70, "churn-00003": 30}, rollback_window_s=600))
run_step("churn-00003 at 100%, window 1 s", {"churn-00001": 0, "churn-00003": 100},
         put([R1, R3], {"churn-00001": 0, "churn-00003": 100}, rollback_window_s=1))
# Let churn-00001 pass its rollback window and unload, then send traffic back to it: it
# reloads while the old split keeps serving.
deadline = time.time() + 10
while time.time() < deadline:
    st = eng.request("GET", "/ksv/v1/models/churn", admin=True)[2]
    if {r["name"]: r["state"] for r in st["revisions"]}.get("churn-00001") == "unloaded":
        break
    time.sleep(0.1)
check({r["name"]: r["state"] for r in st["revisions"]}.get("churn-00001") == "unloaded",
      "churn-00001 unloaded after its 1 s rollback window, under load")
run_step("rollback to an unloaded revision", {"churn-00001": 100, "churn-00003": 0},
         traffic({"churn-00001": 100, "churn-00003": 0}))
strict_elapsed = time.time() - t_start

# Delete and re-create: 404 (gone) and 503 (loading) are legitimate here, nothing else.
load.set_phase("delete")
admin("DELETE", "/ksv/v1/models/churn")
time.sleep(0.3)
admin("PUT", "/ksv/v1/models/churn", {"revisions": [R1, R2], "traffic": {"churn-00001": 80,
                                                                          "churn-00002": 20}})
eng.wait_applied("churn")
time.sleep(0.2)
run_step("re-created 80/20", {"churn-00001": 80, "churn-00002": 20}, lambda: None)

# SIGTERM under load.
load.set_phase("sigterm")
time.sleep(0.2)
t0 = time.time()
eng.proc.send_signal(signal.SIGTERM)
try:
    code = eng.proc.wait(10)
except Exception:
    code = None
exit_s = time.time() - t0
time.sleep(0.3)  # the clients now meet a closed port
load.join()

# ------------------------------------------------------------------------------ verdicts

total = load.total()
errors = collections.Counter()
for c in load.errors:
    errors.update(c)
wrong = [w for ws in load.wrong for w in ws]
print("responses by (phase, status, revision):")
for (phase, status, revision), n in sorted(total.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], str(kv[0][2]))):
    print("  %-34s %3d %-12s %6d" % (phase, status, revision, n))
print("client-side errors by (phase, exception): %s" % dict(errors))
print("strict phases took %.1f s, %d answers" %
      (strict_elapsed, sum(n for (p, _, _), n in total.items() if p not in ("delete", "sigterm"))))

lenient = ("delete", "sigterm")
non200 = {k: n for k, n in total.items() if k[1] != 200 and k[0] not in lenient}
check(not non200, "no non-200 answer while the model changed under load (%s)" % non200)
strict_errors = {k: n for k, n in errors.items() if k[0] not in lenient}
check(not strict_errors, "no connection failed outside delete/SIGTERM (%s)" % strict_errors)
check(not wrong, "every 200 equals XGBoost's answer for the revision in its header (%d wrong: %s)"
      % (len(wrong), wrong[:2]))
check(all(k[2] in EXPECTED for k in total if k[1] == 200), "every 200 names a known revision")
for name, split in steps:
    got = collections.Counter({k[2]: n for k, n in total.items() if k[0] == name and k[1] == 200})
    n = sum(got.values())
    shares = {r: 100.0 * got[r] / n for r in split} if n else {}
    ok = n > 0 and set(got) <= set(split)
    for r, want in split.items():
        if want == 0:
            ok = ok and got[r] == 0
        else:
            ok = ok and abs(shares[r] - want) <= 10
    check(ok, "%s: %d answers, shares %s (want %s)" %
          (name, n, {r: round(s, 1) for r, s in shares.items()}, split))
delete_codes = collections.Counter()
for k, n in total.items():
    if k[0] == "delete":
        delete_codes[k[1]] += n
check(set(delete_codes) <= {200, 404, 503},
      "delete and re-create: only 200, 404 (gone) or 503 (loading) (%s)" % dict(delete_codes))
check(code == 0 and exit_s <= 10, "SIGTERM under load: exit %s after %.2f s" % (code, exit_s))
sig, sig_errors = collections.Counter(), collections.Counter()
for k, n in total.items():
    if k[0] == "sigterm":
        sig[k[1]] += n
for k, n in errors.items():
    if k[0] == "sigterm":
        sig_errors[k[1]] += n
# A keep-alive request that meets the closing socket fails at the connection (refused, reset,
# broken pipe, closed without an answer); a timeout or any HTTP error answer would be a fault.
at_connection = {"ConnectionRefusedError", "ConnectionResetError", "BrokenPipeError",
                 "RemoteDisconnected"}
check(set(sig) == {200} and set(sig_errors) <= at_connection,
      "requests during SIGTERM: answered 200 or failed at the connection, no 5xx (%s; errors %s)"
      % (dict(sig), dict(sig_errors)))
finish()
