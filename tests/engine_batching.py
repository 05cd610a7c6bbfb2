"""ksv-engine batching: concurrent requests to one revision are merged into one runtime call
(settings.batch_max_rows / batch_max_delay_us), every caller still gets exactly its own
rows' answers, and /metrics shows batches of more than one request. Run on the CPU runtimes
(no GPU here); on a GPU ksv-forest asks for batching by itself."""
import json
import random
import re
import threading

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path

eng = Engine(threads=8)
req = load_json("requests", "fraud.json")
rows = req["inputs"][0]["data"]
width = req["inputs"][0]["shape"][1]
expected = load_json("expected", "fraud.json")["data"]
n_rows = len(expected)
flat = rows if not isinstance(rows[0], list) else [v for r in rows for v in r]

for runtime in ("ksv-xgboost", "ksv-forest"):
    name = "fraud-" + runtime.split("-")[1]
    st, _, body = eng.request("PUT", "/ksv/v1/models/" + name, {
        "revisions": [{"name": name + "-00001", "runtime": runtime,
                       "storage_uri": model_path("fraud"),
                       "settings": {"batch_max_rows": 64, "batch_max_delay_us": 3000}}]}, admin=True)
    check(st == 202, "%s: PUT with batching settings" % runtime)
    eng.wait_applied(name)

    wrong, failed, total = [0], [0], [0]
    lock = threading.Lock()

    def client(seed):
        rng = random.Random(seed)
        conn = eng.conn()
        for _ in range(150):
            # A random subset of the request's rows, so batches mix requests of different sizes.
            pick = sorted(rng.sample(range(n_rows), rng.randint(1, n_rows)))
            data = [flat[i * width + j] for i in pick for j in range(width)]
            body = {"inputs": [{"name": "input-0", "shape": [len(pick), width], "datatype": "FP32",
                                "data": data}]}
            st, _, resp = eng.request("POST", "/v2/models/%s/infer" % name, body, conn=conn)
            with lock:
                total[0] += 1
                if st != 200:
                    failed[0] += 1
                elif max_abs_diff(resp["outputs"][0]["data"], [expected[i] for i in pick]) > 1e-6:
                    wrong[0] += 1
        conn.close()

    threads = [threading.Thread(daemon=True, target=client, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(failed[0] == 0, "%s: %d concurrent requests, none failed" % (runtime, total[0]))
    check(wrong[0] == 0, "%s: every caller got exactly its own rows' answers (%d wrong)" % (runtime, wrong[0]))
    st, _, text = eng.request("GET", "/metrics")
    labels = 'model="%s",revision="%s-00001"' % (name, name)
    b = re.search(r"^ksv_batches_total\{%s\} (\d+)$" % re.escape(labels), text, re.M)
    r = re.search(r"^ksv_batch_rows_total\{%s\} (\d+)$" % re.escape(labels), text, re.M)
    c = re.search(r'^ksv_requests_total\{%s,code="200"\} (\d+)$' % re.escape(labels), text, re.M)
    ok = b and r and c and int(b.group(1)) > 0
    check(ok and int(b.group(1)) < int(c.group(1)),
          "%s: fewer runtime calls than requests (%s batches for %s requests, %s rows)" %
          (runtime, b and b.group(1), c and c.group(1), r and r.group(1)))

# Off unless asked for: a plain revision has no batcher.
eng.request("PUT", "/ksv/v1/models/plain", {"revisions": [{"name": "plain-00001",
            "storage_uri": model_path("fraud")}]}, admin=True)
eng.wait_applied("plain")
eng.request("POST", "/v2/models/plain/infer", req)
st, _, text = eng.request("GET", "/metrics")
check('ksv_batches_total{model="plain"' not in text, "batching is off unless asked for (or a GPU asks)")
st, _, resp = eng.request("PUT", "/ksv/v1/models/bad", {"revisions": [{"name": "bad-00001",
                          "storage_uri": model_path("fraud"), "settings": {"batch_max_rows": -1}}]}, admin=True)
check(st == 400, "a negative batch size is refused")
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
