"""--gpu-memory-budget on a real ksv-engine (DESIGN.md §11, issue 13 item 4).

SIMULATED: this machine has no GPU. The models run on the CPU (the engine falls back), and
the node accounts the GPU memory each revision declares (settings.gpu_memory_bytes, which
ksv sends from resources.limits ksv.io/gpu-memory): the budget, the eviction, the refusal,
the gauges and the residency events are the real code; only the device memory behind the
figures is not there. (On a GPU, a ksv-forest revision that declares nothing is accounted
at the size of its layout; not exercised here.)

With --gpu-memory-budget 1G:
  a (minReplicas 0, 600Mi) and b (minReplicas 1, 300Mi) fit: ksv_model_memory_bytes
  {device="gpu0"} shows 600Mi and 300Mi, /ksv/v1/node gpu_used 900Mi of 1Gi;
  c (minReplicas 1, 300Mi) does not fit until a, least recently used and allowed to scale
  to zero, goes: a scaled-to-zero, c ready, used 600Mi;
  a's next request is a cold start that cannot fit (b and c may not go): 503 with
  "gpu memory budget: needs 600.0 MiB, free 424.0 MiB of 1.0 GiB";
  b's new revision declaring 900Mi is refused with the same wording while b-00001 serves on
  (200s with XGBoost's answers);
  the residency events carry the declared GPU bytes (what `ksv cost` bills);
  through ksv, resources.limits ksv.io/gpu-memory reaches the engine; a bad quantity is
  refused at apply with the file and field.
"""
import json
import os
import re
import time

from ksvtest import (ksv_cli, ENGINE, Engine, check, finish, isvc_yaml, load_json, max_abs_diff,
                     model_path, tmpdir)

MI = 1 << 20
IRIS = load_json("requests", "iris.json")
IRIS_WANT = load_json("expected", "iris.json")["data"]


def put(eng, model, revs, traffic=None):
    revs = revs if isinstance(revs, list) else [revs]
    body = {"revisions": revs, "traffic": traffic or {revs[0]["name"]: 100},
            "scale_window_s": 60}
    return eng.request("PUT", "/ksv/v1/models/" + model, admin=True, body=body)


def rev(name, gpu_mi, min_replicas=1):
    return {"name": name, "runtime": "ksv-xgboost", "storage_uri": model_path("iris"),
            "settings": {"min_replicas": min_replicas, "gpu_memory_bytes": gpu_mi * MI}}


def gpu_gauge(eng, model):
    text = eng.request("GET", "/metrics")[2]
    m = re.search(r'^ksv_model_memory_bytes\{model="%s",revision="[^"]+",device="gpu0"\} (\d+)$'
                  % model, text, re.M)
    return int(m.group(1)) if m else None


def revisions(eng, model):
    return {r["name"]: r for r in eng.request("GET", "/ksv/v1/models/" + model,
                                               admin=True)[2]["revisions"]}


def wait(cond, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def infer(eng, model):
    st, hdrs, out = eng.request("POST", "/v2/models/%s/infer" % model, IRIS, timeout=30)
    return st, hdrs, out


try:
    eng = Engine("--gpu-memory-budget", "1G")
    check(put(eng, "a", rev("a-00001", 600, min_replicas=0))[0] == 202, "a put")
    eng.wait_applied("a")
    check(put(eng, "b", rev("b-00001", 300))[0] == 202, "b put")
    eng.wait_applied("b")
    check(infer(eng, "b")[0] == 200, "b answers")
    check(gpu_gauge(eng, "a") == 600 * MI and gpu_gauge(eng, "b") == 300 * MI,
          "gpu0 gauges: a 600Mi, b 300Mi (%s, %s)" % (gpu_gauge(eng, "a"), gpu_gauge(eng, "b")))
    mem = eng.request("GET", "/ksv/v1/node", admin=True)[2]["memory"]
    check(mem["gpu_used_bytes"] == 900 * MI and mem["gpu_budget_bytes"] == 1 << 30,
          "/ksv/v1/node: 900Mi of 1Gi GPU memory used (%s)" % mem)
    text = eng.request("GET", "/metrics")[2]
    check('ksv_memory_budget_bytes{device="gpu0"} %d' % (1 << 30) in text,
          "ksv_memory_budget_bytes{device=gpu0}")

    # c needs a's room: a (minReplicas 0, least recently used) scales to zero.
    check(put(eng, "c", rev("c-00001", 300))[0] == 202, "c put")
    check(wait(lambda: revisions(eng, "c")["c-00001"]["state"] == "ready"), "c ready")
    check(revisions(eng, "a")["a-00001"]["state"] == "scaled-to-zero",
          "a was evicted to make room (scaled-to-zero)")
    check(gpu_gauge(eng, "a") == 0, "a holds no GPU memory now")
    mem = eng.request("GET", "/ksv/v1/node", admin=True)[2]["memory"]
    check(mem["gpu_used_bytes"] == 600 * MI, "600Mi used after the eviction (%s)" % mem)

    # a's cold start cannot fit: b and c may not scale to zero.
    st, hdrs, out = infer(eng, "a")
    want = "gpu memory budget: needs 600.0 MiB, free 424.0 MiB of 1.0 GiB"
    check(st == 503 and want in json.dumps(out) and "retry-after" in hdrs,
          "a's cold start refused: 503 %s (%s)" % (want, out))

    # b's new revision does not fit: refused, b-00001 keeps serving.
    check(put(eng, "b", [rev("b-00001", 300), rev("b-00002", 900)],
              {"b-00001": 0, "b-00002": 100})[0] == 202, "b-00002 put")
    check(wait(lambda: revisions(eng, "b")["b-00002"]["state"] == "failed"), "b-00002 failed")
    r2 = revisions(eng, "b")["b-00002"]
    check("gpu memory budget: needs 900.0 MiB" in r2.get("error", ""),
          "with the budget's wording (%s)" % r2.get("error"))
    oks = 0
    for _ in range(20):
        st, hdrs, out = infer(eng, "b")
        oks += st == 200 and hdrs.get("ksv-revision") == "b-00001" and \
            max_abs_diff(out["outputs"][0]["data"], IRIS_WANT) < 1e-5
    check(oks == 20, "the old split serves: 20/20 from b-00001 with XGBoost's answers (%d)" % oks)

    # The residency events carry the GPU bytes.
    evs = eng.request("GET", "/ksv/v1/events?since=0&limit=5000", admin=True)[2]["events"]
    loads = {e["model"]: e["figures"]["gpu_memory_bytes"] for e in evs if e["kind"] == "model-load"}
    stz = [e for e in evs if e["kind"] == "scale-to-zero" and e["model"] == "a"]
    check(loads == {"a": 600 * MI, "b": 300 * MI, "c": 300 * MI}, "model-load events carry the "
          "declared GPU bytes (%s)" % loads)
    check(stz and stz[0]["figures"]["reason"] == "memory-budget" and
          stz[0]["figures"]["gpu_memory_bytes"] == 600 * MI,
          "a's scale-to-zero: reason memory-budget, 600Mi of GPU memory given back")

    # Through ksv.
    work = tmpdir("ksv-gpu-")
    env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), KSV_ENGINE=ENGINE,
               XDG_STATE_HOME=os.path.join(work, "state"), USER="tester")
    ksv, _ = ksv_cli(env)
    ksv("node", "add", "n1", "http://127.0.0.1:%d" % eng.port, "--token-file",
        os.path.join(eng.state_dir, "token"))
    def manifest(memory):
        return isvc_yaml("d", model_path("iris"), limits={"ksv.io/gpu-memory": memory})

    path = os.path.join(work, "d.yaml")
    with open(path, "w") as f:
        f.write(manifest("100Mi"))
    rc, out, err = ksv("apply", "-f", path, "--node", "n1")
    check(rc == 0 and "not acted on" not in out + err, "apply with ksv.io/gpu-memory (%s)" %
          (out + err).strip())
    check(revisions(eng, "d")["d-00001"]["spec"]["settings"].get("gpu_memory_bytes") == 100 * MI,
          "the engine got 100Mi of declared GPU memory")
    with open(path, "w") as f:
        f.write(manifest("lots"))
    rc, out, err = ksv("apply", "-f", path, "--node", "n1")
    check(rc == 1 and "ksv.io/gpu-memory" in err and "d.yaml:" in err,
          "a bad quantity is refused with file and field (%s)" % err.strip())
finally:
    pass
finish()
