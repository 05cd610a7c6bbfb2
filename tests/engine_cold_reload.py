"""Fast cold starts on a real ksv-engine (src/engine/runtime_xgboost.c, docs/BENCHMARKS.md
"Cold starts").

A ksv-xgboost revision first loaded from JSON leaves a UBJSON copy of its booster in
STATE_DIR/reload; its cold starts read that copy (and skip the document check of bytes
already checked) only when both the model file and the copy have the digests the first load
recorded.

1. fraud (min_replicas 0, 1 s window): the first load reads the file (reload_copy false) and
   writes one copy; after scaling to zero, each cold start reads the copy (reload_copy
   true) and answers XGBoost's own predictions.
2. A tampered copy is never read: replaced by another model's valid copy (iris's), the
   next cold start reads the file (reload_copy false) and still answers fraud's
   predictions.
3. A changed model file is checked and read again: the file rewritten with other bytes
   (the same model re-indented) gives reload_copy false and correct answers.
4. Deleting the model removes its copy; a restarted engine starts with no copies.
"""
import json
import os
import shutil
import time

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path, tmpdir

REQ = {m: json.dumps(load_json("requests", m + ".json")) for m in ("fraud", "iris")}
WANT = {m: load_json("expected", m + ".json")["data"] for m in ("fraud", "iris")}


def put(eng, model, uri):
    body = {"revisions": [{"name": model + "-00001", "runtime": "ksv-xgboost",
                           "storage_uri": uri, "settings": {"min_replicas": 0}}],
            "scale_window_s": 1}
    st, _, out = eng.request("PUT", "/ksv/v1/models/" + model, admin=True, body=body)
    check(st == 202, "put %s (%s)" % (model, out))


def state(eng, model):
    return eng.request("GET", "/ksv/v1/models/" + model, admin=True)[2]["revisions"][0]


def wait_state(eng, model, want, timeout=30):
    deadline = time.time() + timeout
    r = state(eng, model)
    while time.time() < deadline and r["state"] != want:
        time.sleep(0.05)
        r = state(eng, model)
    return r["state"] == want


def answers_right(eng, model):
    st, _, out = eng.request("POST", "/v2/models/%s/infer" % model, REQ[model])
    return st == 200 and max_abs_diff(out["outputs"][0]["data"], WANT[model]) < 1e-6


def copies(eng):
    d = os.path.join(eng.state_dir, "reload")
    return sorted(f for f in os.listdir(d) if f.endswith(".ubj")) if os.path.isdir(d) else []


def cold_start(eng, model):
    """Waits for scale to zero, sends a request; (answer right, reload_copy of the load)."""
    check(wait_state(eng, model, "scaled-to-zero"), "%s scaled to zero" % model)
    ok = answers_right(eng, model)
    return ok, state(eng, model).get("reload_copy")


try:
    work = tmpdir("ksv-reload-")
    fraud_file = os.path.join(work, "fraud", "model.json")
    os.makedirs(os.path.dirname(fraud_file))
    shutil.copy(os.path.join(model_path("fraud"), "model.json"), fraud_file)

    eng = Engine()
    put(eng, "fraud", os.path.dirname(fraud_file))
    check(wait_state(eng, "fraud", "ready"), "fraud loaded")
    check(state(eng, "fraud").get("reload_copy") is False, "the first load read the file")
    check(answers_right(eng, "fraud"), "and answers XGBoost's predictions")
    check(len(copies(eng)) == 1, "one copy written (%s)" % copies(eng))
    fraud_copy = copies(eng)[0] if copies(eng) else "none"

    # 1. Cold starts from the copy.
    for i in range(2):
        ok, from_copy = cold_start(eng, "fraud")
        check(ok and from_copy is True,
              "cold start %d reads the copy and answers right (%s, %s)" % (i + 1, ok, from_copy))

    # 2. A tampered copy: another model's valid binary in its place.
    put(eng, "iris", model_path("iris"))
    check(wait_state(eng, "iris", "ready") and answers_right(eng, "iris"), "iris loaded")
    others = [n for n in copies(eng) if n != fraud_copy]
    check(len(others) == 1, "iris has its own copy (%s)" % copies(eng))
    d = os.path.join(eng.state_dir, "reload")
    if others:
        shutil.copy(os.path.join(d, others[0]), os.path.join(d, fraud_copy))
    ok, from_copy = cold_start(eng, "fraud")
    check(ok and from_copy is False,
          "with iris's copy in fraud's place: read from the file, fraud's answers (%s, %s)" %
          (ok, from_copy))
    ok, from_copy = cold_start(eng, "fraud")
    check(ok and from_copy is True, "and a good copy again next time (%s, %s)" % (ok, from_copy))

    # 3. The model file changes (the same model, other bytes): checked and read again.
    with open(fraud_file) as f:
        doc = json.load(f)
    with open(fraud_file + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(fraud_file + ".tmp", fraud_file)
    ok, from_copy = cold_start(eng, "fraud")
    check(ok and from_copy is False,
          "a rewritten file is read and checked, not the old copy (%s, %s)" % (ok, from_copy))
    ok, from_copy = cold_start(eng, "fraud")
    check(ok and from_copy is True, "its own copy serves the next cold start (%s, %s)" %
          (ok, from_copy))

    # 4. Deleting a model removes its copy; a restart starts with none.
    check(eng.request("DELETE", "/ksv/v1/models/iris", admin=True)[0] == 200, "DELETE iris")
    deadline = time.time() + 20
    while time.time() < deadline and len(copies(eng)) != 1:
        time.sleep(0.05)
    check(len(copies(eng)) == 1, "iris's copy is gone, fraud's kept (%s)" % copies(eng))
    check(eng.stop() == 0, "engine exits 0")
    eng2 = Engine(state_dir=eng.state_dir)
    check(copies(eng2) == [], "a restarted engine starts with no copies (%s)" % copies(eng2))
    check(wait_state(eng2, "fraud", "ready") and answers_right(eng2, "fraud"),
          "and serves fraud from its file")
    check(state(eng2, "fraud").get("reload_copy") is False, "(read from the file)")
finally:
    pass
finish()
