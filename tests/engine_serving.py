"""ksv-engine standalone serving: every demo model and KServe's own iris sample answer like
XGBoost itself (data/expected holds XGBoost's predictions), over V2 and V1, with the
contract's headers, health, metadata and metrics."""
import json
import os
import re
import subprocess

from ksvtest import (DATA, ENGINE, Engine, check, finish, load_json, max_abs_diff)

# --version: the contract's first lines.
out = subprocess.run([ENGINE, "--version"], capture_output=True, text=True)
check(out.returncode == 0 and out.stdout.startswith("ksv-engine "), "--version names the program")
check(re.search(r"^cuda: (no|yes \(.+\))$", out.stdout, re.M) is not None, "--version has a cuda line")
check(re.search(r"^xgboost: \d+\.\d+\.\d+$", out.stdout, re.M) is not None, "--version has an xgboost line")
out = subprocess.run([ENGINE, "--bogus"], capture_output=True, text=True)
check(out.returncode == 2 and "--bogus" in out.stderr, "an unknown flag is a usage error (exit 2)")
out = subprocess.run([ENGINE, "--model", "Bad Name=/x"], capture_output=True, text=True)
check(out.returncode == 2, "an invalid model name is a usage error")

compat = os.path.join(DATA, "compat", "kserve-xgboost-iris")
eng = Engine("--model-dir", os.path.join(DATA, "models"),
             "--model", "compat-json=" + os.path.join(compat, "model.json"),
             "--model", "compat-ubj=file://" + os.path.join(compat, "model.ubj"),
             "--model", "compat-bst=" + os.path.join(compat, "model.bst"))
check(eng.wait_ready(), "engine becomes ready with every model of data/models")

# Every demo model: V2 and V1 answers equal XGBoost's own within 1e-6.
models = sorted(os.listdir(os.path.join(DATA, "models")))
st, _, listing = eng.request("GET", "/v2/models")
check(st == 200 and set(models) <= set(listing["models"]), "/v2/models lists every model")
for name in models:
    expected = load_json("expected", name + ".json")
    body = load_json("requests", name + ".json")
    body["id"] = "req-" + name
    st, hdrs, resp = eng.request("POST", "/v2/models/%s/infer" % name, body)
    if not check(st == 200, "%s: V2 infer answers 200 (%s)" % (name, st if st != 200 else "")):
        print(resp)
        continue
    out0 = resp["outputs"][0]
    check(out0["name"] == "output-0" and out0["datatype"] == "FP32", "%s: output-0, FP32" % name)
    check(out0["shape"] == expected["shape"], "%s: shape %s" % (name, expected["shape"]))
    diff = max_abs_diff(out0["data"], expected["data"])
    check(diff <= 1e-6, "%s: V2 answers equal XGBoost's (max abs diff %.2g)" % (name, diff))
    check(resp["model_name"] == name and resp["model_version"] == name + "-00001",
          "%s: model_name and model_version" % name)
    check(resp["id"] == "req-" + name, "%s: id echoed" % name)
    check(hdrs.get("ksv-revision") == name + "-00001", "%s: ksv-revision header" % name)
    v1 = load_json("requests", name + ".v1.json")
    st, _, resp = eng.request("POST", "/v1/models/%s:predict" % name, v1)
    ok = st == 200 and max_abs_diff(resp["predictions"], expected["data"]) <= 1e-6
    check(ok, "%s: V1 predictions equal XGBoost's" % name)
    if ok and len(expected["shape"]) == 2:
        check(len(resp["predictions"]) == expected["shape"][0] and
              len(resp["predictions"][0]) == expected["shape"][1],
              "%s: V1 predictions are one list per row" % name)

# KServe's own sample, unchanged: V2 request from iris-input.json and the V1 instances of
# KServe's e2e test, from all three model formats, answer class ids [1, 1].
with open(os.path.join(compat, "iris-input.json")) as f:
    iris_input = json.load(f)
for name in ("compat-json", "compat-ubj", "compat-bst"):
    st, _, resp = eng.request("POST", "/v2/models/%s/infer" % name, iris_input)
    check(st == 200 and resp["outputs"][0]["data"] == [1.0, 1.0],
          "KServe sample %s: V2 iris-input.json gives [1.0, 1.0]" % name)
    st, _, resp = eng.request("POST", "/v1/models/%s:predict" % name,
                              {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]})
    check(st == 200 and resp["predictions"] == [1, 1],
          "KServe sample %s: V1 predictions == [1, 1]" % name)

# Headers: x-request-id echoed or generated.
st, hdrs, _ = eng.request("POST", "/v2/models/iris/infer", load_json("requests", "iris.json"),
                          headers={"x-request-id": "trace-123"})
check(hdrs.get("x-request-id") == "trace-123", "x-request-id is echoed")
st, hdrs, resp = eng.request("POST", "/v2/models/iris/infer", load_json("requests", "iris.json"))
check(len(hdrs.get("x-request-id", "")) >= 8, "x-request-id is generated when absent")
check(resp.get("id") == hdrs.get("x-request-id"), "a generated id matches the header")

# Health, metadata, readiness.
check(eng.request("GET", "/v2/health/live")[2] == {"live": True}, "/v2/health/live")
check(eng.request("GET", "/v2/health/ready")[2] == {"ready": True}, "/v2/health/ready")
st, _, meta = eng.request("GET", "/v2")
check(st == 200 and meta["name"] == "ksv-engine" and "version" in meta and "extensions" in meta,
      "/v2 server metadata")
st, _, meta = eng.request("GET", "/v2/models/iris")
check(st == 200 and meta["name"] == "iris" and meta["versions"] == ["iris-00001"] and
      meta["platform"] == "xgboost" and meta["inputs"][0]["shape"] == [-1, 4] and
      meta["outputs"][0]["shape"] == [-1, 3] and meta["parameters"]["runtime"] == "ksv-forest",
      "/v2/models/iris metadata: versions, platform, inputs, outputs, runtime (auto chose "
      "ksv-forest)")
st, _, meta = eng.request("GET", "/v2/models/iris/versions/iris-00001")
check(st == 200 and meta["versions"] == ["iris-00001"], "versioned metadata")
check(eng.request("GET", "/v2/models/iris/ready")[2] == {"name": "iris", "ready": True},
      "/v2/models/iris/ready")
check(eng.request("GET", "/v2/models/iris/versions/iris-00001/ready")[0] == 200,
      "/v2/models/iris/versions/iris-00001/ready")
check(eng.request("GET", "/v2/models/nope/ready")[0] == 404, "unknown model ready is 404")
check(eng.request("GET", "/v1/models/iris")[2] == {"name": "iris", "ready": True}, "/v1/models/iris")
st, hdrs, resp = eng.request("POST", "/v2/models/iris/versions/iris-00001/infer",
                             load_json("requests", "iris.json"))
check(st == 200 and hdrs.get("ksv-revision") == "iris-00001", "pinned infer answers from that revision")

# Standalone models refuse admin changes (409).
st, _, resp = eng.request("PUT", "/ksv/v1/models/iris/traffic", {"traffic": {"iris-00001": 100}},
                          admin=True)
check(st == 409 and "error" in resp, "a --model-dir model refuses admin changes with 409")

# Metrics: the contract's names, counting what was just served.
st, hdrs, text = eng.request("GET", "/metrics")
check(st == 200 and hdrs.get("content-type", "").startswith("text/plain"), "/metrics is text")
for name in ("ksv_requests_total", "ksv_request_duration_seconds_bucket",
             "ksv_request_duration_seconds_sum", "ksv_request_duration_seconds_count",
             "ksv_inflight_requests", "ksv_model_ready", "ksv_model_load_seconds",
             "ksv_traffic_percent"):
    check(re.search(r"^%s\{" % name, text, re.M) is not None, "/metrics has %s" % name)
m = re.search(r'^ksv_requests_total\{model="iris",revision="iris-00001",code="200"\} (\d+)$', text, re.M)
check(m is not None and int(m.group(1)) >= 4, "ksv_requests_total counts iris's answers")
m = re.search(r'^ksv_request_duration_seconds_count\{model="iris",revision="iris-00001"\} (\d+)$', text, re.M)
m2 = re.search(r'^ksv_request_duration_seconds_bucket\{model="iris",revision="iris-00001",le="\+Inf"\} (\d+)$', text, re.M)
check(m and m2 and m.group(1) == m2.group(1), "histogram _count equals the +Inf bucket")
check('ksv_traffic_percent{model="iris",revision="iris-00001"} 100' in text, "traffic gauge 100%")
check('ksv_model_ready{model="iris",revision="iris-00001"} 1' in text, "ready gauge 1")

# SIGTERM: exit 0.
check(eng.stop() == 0, "SIGTERM: the engine exits 0")
finish()
