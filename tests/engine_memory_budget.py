"""Memory accounting and budgets on real ksv-engines (docs/OPERATIONS.md, "Memory budgets").

A first engine without a budget measures three models loaded in order: A (churn-v2,
min_replicas 0), B (regression), C (fraud). A second engine gets --memory-budget of
a + b + c - a/2: A and B fit; C does not until A, the one allowed to scale to zero, is
unloaded (least recently used first), after which C serves. A new revision of B too big for
what is left, with nothing evictable, fails with "memory budget: needs X, free Y of Z" while
B's old revision keeps serving; so does a cold start of A. A revision over its own
resources.limits.memory fails after load with the measured size; one that fits measures
what fraud measured in the first engine (to 64 bytes: the engine counts the loading
thread's own allocations, whatever else runs). Every answer is compared with XGBoost's own
output (data/expected, written by XGBoost).
"""
import json
import os
import re
import time

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path

MODELS = {  # name: (data/models folder, min_replicas)
    "a": ("churn-v2", 0),
    "b": ("regression", 1),
    "c": ("fraud", 1),
}


def rev(name, folder, **settings):
    return {"name": name, "runtime": "ksv-xgboost", "storage_uri": model_path(folder),
            "settings": settings}


def put(eng, model, revisions, traffic=None):
    body = {"revisions": revisions}
    if traffic:
        body["traffic"] = traffic
    return eng.request("PUT", "/ksv/v1/models/" + model, body, admin=True)[0]


def state(eng, model):
    return eng.request("GET", "/ksv/v1/models/" + model, admin=True)[2]


def wait_rev(eng, model, revision, states, timeout=30):
    deadline = time.time() + timeout
    r = None
    while time.time() < deadline:
        m = state(eng, model)
        r = next((x for x in m.get("revisions", []) if x["name"] == revision), None)
        if r and r["state"] in states:
            return r
        time.sleep(0.05)
    return r


def infer_ok(eng, model, folder):
    st, hdrs, resp = eng.request("POST", "/v2/models/%s/infer" % model,
                                 json.dumps(load_json("requests", folder + ".json")))
    want = load_json("expected", folder + ".json")["data"]
    return st == 200 and max_abs_diff(resp["outputs"][0]["data"], want) < 1e-5, st, hdrs, resp


def load_all(eng):
    sizes = {}
    for model, (folder, minr) in MODELS.items():
        check(put(eng, model, [rev(model + "-00001", folder, min_replicas=minr)]) == 202,
              "PUT %s (%s, min_replicas %d)" % (model, folder, minr))
        r = wait_rev(eng, model, model + "-00001", ("ready", "failed", "scaled-to-zero"))
        sizes[model] = r["memory_bytes"] if r and r["state"] == "ready" else 0
    return sizes


def parse_size(text):
    n, unit = text.split()
    return float(n) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]


# ------------------------------------------------------------ measure without a budget
# No allocator tunables: the engine counts what the loading thread allocated and holds
# (src/engine/memory_budget.c), so a model's size is the same in every engine to a few bytes
# whatever else runs; the process-wide figure it used before jumped by ~120 KiB (glibc's
# per-thread cache, other threads, libxgboost's OpenMP threads), past this budget's slack.
STEADY = {}
free = Engine(threads=2, extra_env=STEADY)
sizes = load_all(free)
check(all(v > 0 for v in sizes.values()), "each model's memory is measured: %s" % sizes)
st, _, metrics = free.request("GET", "/metrics")
for model in MODELS:
    m = re.search(r'ksv_model_memory_bytes\{model="%s",revision="%s-00001",device="cpu"\} (\d+)'
                  % (model, model), metrics)
    check(m and int(m.group(1)) == sizes[model],
          "ksv_model_memory_bytes{model=%s} matches the admin state" % model)
st, _, node = free.request("GET", "/ksv/v1/node", admin=True)
check(node["memory"]["used_bytes"] == sum(sizes.values()) and node["memory"]["budget_bytes"] == 0,
      "/ksv/v1/node sums them, no budget: %s" % node["memory"])
check(free.stop() == 0, "measuring engine exits 0")

a, b, c = sizes["a"], sizes["b"], sizes["c"]
budget = a + b + c - a // 2
print("   sizes a=%d b=%d c=%d, budget %d" % (a, b, c, budget))

# ------------------------------------------------------------------- the same under a budget
eng = Engine("--memory-budget", str(budget), threads=2, extra_env=STEADY)
sizes2 = load_all(eng)
ra = wait_rev(eng, "a", "a-00001", ("scaled-to-zero",), timeout=5)
check(ra and ra["state"] == "scaled-to-zero" and ra["memory_bytes"] == 0,
      "loading C unloaded A, the revision allowed to scale to zero: %s" % (ra and ra["state"]))
for model in ("b", "c"):
    r = wait_rev(eng, model, model + "-00001", ("ready",), timeout=5)
    check(r and r["state"] == "ready", "%s is ready under the budget" % model)
    check(infer_ok(eng, model, MODELS[model][0])[0], "%s answers XGBoost's own output" % model)
st, _, node = eng.request("GET", "/ksv/v1/node", admin=True)
check(node["memory"]["budget_bytes"] == budget and node["memory"]["used_bytes"] <= budget,
      "the node holds no more than its budget: %s" % node["memory"])
st, _, readiness = eng.request("GET", "/v2/models/a/ready")
check(st == 200, "A still answers ready (scaled to zero)")

# A revision of B that cannot fit: nothing evictable is left (A is already unloaded).
check(put(eng, "b", [rev("b-00001", "regression", min_replicas=1),
                     rev("b-00002", "fraud", min_replicas=1)],
          {"b-00001": 0, "b-00002": 100}) == 202, "PUT b-00002 (fraud's file) taking 100%")
r = wait_rev(eng, "b", "b-00002", ("failed", "ready"))
check(r and r["state"] == "failed", "b-00002 fails: %s" % (r and r.get("error")))
msg = r.get("error", "") if r else ""
m = re.match(r"memory budget: needs (.+), free (.+) of (.+)$", msg)
check(m is not None, "with the budget's wording: %s" % msg)
if m:
    need, free_, total = (parse_size(x) for x in m.groups())
    check(abs(total - budget) <= budget * 0.001 and need > free_,
          "X > Y and Z is the budget (%s)" % msg)
m = state(eng, "b")
check(m["effective_traffic"] == {"b-00001": 100}, "the old split keeps serving: %s" % m["effective_traffic"])
ok, st, hdrs, _ = infer_ok(eng, "b", "regression")
check(ok and hdrs.get("ksv-revision") == "b-00001", "b-00001 answers, correctly")

# A cold start of A that cannot fit: its request gets 503 saying so; B and C stay.
ok, st, hdrs, resp = infer_ok(eng, "a", "churn-v2")
check(st == 503 and "memory budget" in resp.get("error", "") and hdrs.get("retry-after"),
      "a cold start that does not fit: 503 + Retry-After, why: %s" % resp)
for model in ("b", "c"):
    check(infer_ok(eng, model, MODELS[model][0])[0], "%s still serves" % model)

# Deleting C makes room: A's next cold start (after the retry pause) succeeds.
check(eng.request("DELETE", "/ksv/v1/models/c", admin=True)[0] == 200, "DELETE c")
deadline = time.time() + 20
ok = False
while time.time() < deadline and not ok:
    ok = infer_ok(eng, "a", "churn-v2")[0]
    if not ok:
        time.sleep(0.5)
check(ok, "with room again, A comes back on a request and answers XGBoost's output")
check(eng.stop() == 0, "budgeted engine exits 0")

# ------------------------------------------------------- resources.limits.memory per revision
lim = Engine(threads=2, extra_env=STEADY)
check(put(lim, "c", [rev("c-00001", "fraud", memory_limit_bytes=64 * 1024)]) == 202,
      "PUT fraud with a 64 KiB memory limit")
r = wait_rev(lim, "c", "c-00001", ("failed", "ready"))
check(r and r["state"] == "failed" and r["error"].startswith("memory limit: the model takes ")
      and "over its resources.limits.memory of 64.0 KiB" in r["error"],
      "it fails after load with the measured size: %s" % (r and r.get("error")))
check(r and r["memory_bytes"] == 0, "and holds nothing")
check(put(lim, "c", [rev("c-00002", "fraud", memory_limit_bytes=64 << 20)]) == 202,
      "a revision with a 64 MiB limit")
r = wait_rev(lim, "c", "c-00002", ("failed", "ready"))
check(r and r["state"] == "ready", "loads: %s" % (r and r["state"]))
if not os.environ.get("ASAN_OPTIONS"):  # under ASan the sanitizer's process-wide figure
    check(r and abs(r["memory_bytes"] - c) <= 64,
          "fraud measures the same in a third engine, as another revision: %s against %d "
          "bytes" % (r and r["memory_bytes"], c))
check(lim.stop() == 0, "engine exits 0")
finish()
