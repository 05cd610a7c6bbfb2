"""ksv-engine restarts: kill -9 at random moments during a burst of admin changes to two
models, then a restart on the same state dir must serve, for each model, the last change that
was acknowledged or one sent after it (never a mix of two, never nothing), with that split in
effect; and a --model flag wins over restored state of the same name (pinned, one revision,
admin changes refused with 409) while the other restored model is untouched."""
import random
import threading
import time

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path

REVS = {
    "churn-00001": {"name": "churn-00001", "runtime": "ksv-xgboost",
                    "storage_uri": "file://" + model_path("churn-v1")},
    "churn-00002": {"name": "churn-00002", "runtime": "ksv-xgboost",
                    "storage_uri": model_path("churn-v2") + "/model.json"},
    "churn-00003": {"name": "churn-00003", "runtime": "ksv-xgboost",
                    "storage_uri": model_path("churn-v2"), "settings": {"booster_pool": "shared"}},
    "iris-00001": {"name": "iris-00001", "runtime": "ksv-xgboost",
                   "storage_uri": model_path("iris")},
    "iris-00002": {"name": "iris-00002", "runtime": "ksv-xgboost",
                   "storage_uri": model_path("iris-bst")},
}
CHURN_REQ = load_json("requests", "churn-v1.json")
CHURN_V1 = load_json("expected", "churn-v1.json")["data"]


def summary(revisions, traffic, window):
    """What identifies one applied state of a model."""
    return (tuple(sorted(revisions)), tuple(sorted((r, p) for r, p in traffic.items() if p)),
            window)


def state_summary(m):
    return summary([r["name"] for r in m["revisions"]], m["traffic"], m["rollback_window_s"])


def random_split(rng, names):
    cuts = sorted(rng.randrange(0, 101) for _ in range(len(names) - 1))
    parts = [b - a for a, b in zip([0] + cuts, cuts + [100])]
    return dict(zip(names, parts))


def random_change(rng, model, current):
    """A change to the model: (method, path, body, resulting summary)."""
    names, _, window = current[model]
    if model == "churn" and rng.random() < 0.5:
        split = random_split(rng, list(names))
        return ("PUT", "/ksv/v1/models/churn/traffic", {"traffic": split},
                summary(names, split, window))
    if model == "churn":
        names = rng.choice([("churn-00001", "churn-00002"),
                            ("churn-00001", "churn-00002", "churn-00003"),
                            ("churn-00001", "churn-00003")])
    else:
        names = rng.choice([("iris-00001",), ("iris-00001", "iris-00002")])
    split = random_split(rng, list(names))
    window = rng.choice([30, 60, 600, 3600])
    body = {"revisions": [REVS[n] for n in names], "traffic": split, "rollback_window_s": window}
    return ("PUT", "/ksv/v1/models/" + model, body, summary(names, split, window))


eng = Engine()
st1, _, _ = eng.request("PUT", "/ksv/v1/models/churn", {
    "revisions": [REVS["churn-00001"], REVS["churn-00002"]],
    "traffic": {"churn-00001": 70, "churn-00002": 30}, "rollback_window_s": 600}, admin=True)
st2, _, _ = eng.request("PUT", "/ksv/v1/models/iris", {"revisions": [REVS["iris-00001"]]},
                        admin=True)
check(st1 == 202 and st2 == 202, "PUT churn (70/30 canary) and iris")
eng.wait_applied("churn")
eng.wait_applied("iris")
_, _, state = eng.request("GET", "/ksv/v1/state", admin=True)
current = {m["name"]: state_summary(m) for m in state["models"]}
check(current["churn"] == summary(["churn-00001", "churn-00002"],
                                  {"churn-00001": 70, "churn-00002": 30}, 600),
      "the canary state reads back as sent")

rng = random.Random(20251125)
for round_no in range(8):
    acked = dict(current)            # per model: the last acknowledged summary
    later = {m: set() for m in current}  # per model: summaries sent after it
    delay = rng.uniform(0.0, 0.4)
    killer = threading.Timer(delay, eng.kill9)
    killer.start()
    sent = answered = 0
    conn = eng.conn(timeout=5)
    while eng.proc.poll() is None:
        model = rng.choice(["churn", "iris"])
        method, path, body, result = random_change(rng, model, current)
        later[model].add(result)
        sent += 1
        try:
            st, _, resp = eng.request(method, path, body, admin=True, conn=conn)
        except OSError:
            break
        if st != 202:
            check(False, "round %d: change %s %s answered %s %s" % (round_no, method, path, st, resp))
            break
        answered += 1
        acked[model] = result
        later[model] = set()
        current[model] = result
    conn.close()
    killer.join()
    eng.start()
    ok_ready = eng.wait_ready(timeout=30)
    _, _, state = eng.request("GET", "/ksv/v1/state", admin=True)
    got = {m["name"]: state_summary(m) for m in state["models"]}
    for model in ("churn", "iris"):
        allowed = {acked[model]} | later[model]
        check(got.get(model) in allowed,
              "round %d (kill after %.0f ms, %d changes sent, %d answered): %s restored as the "
              "last acknowledged state or a later one sent (%s)"
              % (round_no, delay * 1000, sent, answered, model, got.get(model)))
    for model in ("churn", "iris"):
        applied = eng.wait_applied(model, timeout=30)
        eff = {r: p for r, p in applied["effective_traffic"].items() if p}
        want = dict(got[model][1]) if model in got else None
        check(ok_ready and eff == want,
              "round %d: %s serves the restored split %s" % (round_no, model, eff))
    current = {m: got[m] for m in got}
    if set(got) != {"churn", "iris"}:
        break

# --model wins over restored state of the same name.
restored_iris = current["iris"]
eng.kill9()
eng.args = ["--model", "churn=" + model_path("churn-v1")]
eng.start()
check(eng.wait_ready(timeout=30), "restarted with --model churn=... over a restored churn")
st, _, churn = eng.request("GET", "/ksv/v1/models/churn", admin=True)
check(st == 200 and churn["pinned"] is True and
      [r["name"] for r in churn["revisions"]] == ["churn-00001"] and
      {r: p for r, p in churn["effective_traffic"].items() if p} == {"churn-00001": 100},
      "the --model churn is pinned to churn-00001 at 100%% (%s)" %
      (churn.get("effective_traffic") if isinstance(churn, dict) else churn))
st, hdrs, resp = eng.request("POST", "/v2/models/churn/infer", CHURN_REQ)
check(st == 200 and hdrs.get("ksv-revision") == "churn-00001" and
      max_abs_diff(resp["outputs"][0]["data"], CHURN_V1) <= 1e-6,
      "churn answers from the --model file")
for method, path, body in [
        ("PUT", "/ksv/v1/models/churn", {"revisions": [REVS["churn-00001"], REVS["churn-00002"]],
                                         "traffic": {"churn-00001": 50, "churn-00002": 50}}),
        ("PUT", "/ksv/v1/models/churn/traffic", {"traffic": {"churn-00001": 100}}),
        ("DELETE", "/ksv/v1/models/churn", None)]:
    st, _, resp = eng.request(method, path, body, admin=True)
    check(st == 409 and isinstance(resp, dict) and resp.get("error"),
          "%s %s on a --model model: 409 (%s %s)" % (method, path, st, resp))
st, _, iris = eng.request("GET", "/ksv/v1/models/iris", admin=True)
check(st == 200 and state_summary(iris) == restored_iris and iris["pinned"] is False,
      "the other restored model is untouched (%s)" % (state_summary(iris),))
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
