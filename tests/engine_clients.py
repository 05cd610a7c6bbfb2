"""ksv-engine through the clients people use, unchanged from PyPI: NVIDIA's tritonclient.http
and the KServe SDK's REST client (in a cached venv outside the tree, made by
scripts/venv-clients.sh): JSON and binary inference (inputs and outputs), FP16 and integer
inputs, the repository index, load/unload with and without the admin token, statistics
after N requests, error answers. Predictions are compared with XGBoost's own answers
(data/expected) bit for bit.

Run by the suite's python3, this script re-executes itself with the venv's python; without
the venv (no route to PyPI) it is skipped (77) and says so."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ksvtest import reexec_in_venv  # noqa: E402

reexec_in_venv("venv-clients.sh", "KSV_CLIENT_VENV", "client")

import asyncio  # noqa: E402

import numpy as np  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from ksvtest import Engine, check, finish, load_json, model_path  # noqa: E402

eng = Engine("--model", "fraud=%s" % model_path("fraud"),
             "--model", "iris=%s" % model_path("iris"),
             "--model", "counted=%s" % model_path("fraud"))
for m in ("fraud", "iris", "counted"):
    check(eng.wait_ready(m), "%s ready" % m)
url = "%s:%d" % (eng.host, eng.port)
admin = {"Authorization": "Bearer " + eng.token}


def request_array(name):
    t = load_json("requests", name + ".json")["inputs"][0]
    data = [np.nan if v is None else v for v in t["data"]]
    return np.array(data, dtype=np.float32).reshape(t["shape"])


def expected(name):
    e = load_json("expected", name + ".json")
    return np.array(e["data"], dtype=np.float32).reshape(e["shape"])


def bits_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------ tritonclient.http
tc = httpclient.InferenceServerClient(url)
check(tc.is_server_live() and tc.is_server_ready(), "tritonclient: server live and ready")
meta = tc.get_server_metadata()
check({"binary_tensor_data", "model_repository", "statistics"} <= set(meta["extensions"]),
      "tritonclient: server metadata lists the extensions served (%s)" % meta["extensions"])


def triton_infer(model, x, dtype, binary_in=True, binary_out=None):
    inp = httpclient.InferInput("input-0", list(x.shape), dtype)
    inp.set_data_from_numpy(x, binary_data=binary_in)
    outputs = None
    if binary_out is not None:
        outputs = [httpclient.InferRequestedOutput("output-0", binary_data=binary_out)]
    return tc.infer(model, [inp], outputs=outputs)


x = request_array("fraud")
r = triton_infer("fraud", x, "FP32")  # the client's defaults: binary in and out
check(bits_equal(r.as_numpy("output-0"), expected("fraud")),
      "tritonclient defaults (binary input and output): XGBoost's predictions bit for bit")
check(r.get_response()["outputs"][0].get("parameters", {}).get("binary_data_size") == 24,
      "tritonclient: the answer came in binary")
# JSON cannot carry NaN (Python's json writes a bare NaN, which is not JSON): the JSON-mode
# checks send the rows with missing values as 0 and compare with the binary answer.
xn = np.nan_to_num(x)
r = triton_infer("fraud", xn, "FP32", binary_in=False, binary_out=False)
check(bits_equal(r.as_numpy("output-0"), triton_infer("fraud", xn, "FP32").as_numpy("output-0"))
      and "data" in r.get_response()["outputs"][0],
      "tritonclient JSON input and output: the binary answer bit for bit")
r = triton_infer("iris", request_array("iris"), "FP32")
check(bits_equal(r.as_numpy("output-0"), expected("iris")),
      "tritonclient binary, 3-class iris: probabilities [5,3] bit for bit")
for dtype, arr in (("FP64", xn.astype(np.float64)),
                   ("FP16", xn.astype(np.float16)),
                   ("INT32", (xn * 4).astype(np.int32)),
                   ("INT64", (xn * 4).astype(np.int64)),
                   ("UINT8", np.abs(xn * 4).astype(np.uint8)),
                   ("INT8", (xn * 4).astype(np.int8))):
    want = triton_infer("fraud", arr.astype(np.float32), "FP32").as_numpy("output-0")
    got_bin = triton_infer("fraud", arr, dtype).as_numpy("output-0")
    got_json = triton_infer("fraud", arr, dtype, binary_in=False, binary_out=False).as_numpy("output-0")
    check(bits_equal(got_bin, want) and bits_equal(got_json, want),
          "tritonclient %s input, binary and JSON: equal to the same values sent as FP32" % dtype)

try:
    triton_infer("fraud", x[:, :19].copy(), "FP32")
    check(False, "tritonclient: a wrong feature count raises")
except InferenceServerException as e:
    check(e.status() == "400" and "expected 20 features" in e.message(),
          "tritonclient: wrong feature count -> 400 with the reason (%s %s)" % (e.status(), e.message()))
try:
    triton_infer("nosuch", x, "FP32")
    check(False, "tritonclient: an unknown model raises")
except InferenceServerException as e:
    check(e.status() == "404" and "nosuch" in e.message(),
          "tritonclient: unknown model -> 404 naming it (%s)" % e.message())
try:
    inp = httpclient.InferInput("input-0", [1, 20], "BYTES")
    inp.set_data_from_numpy(np.array([[b"a"] * 20], dtype=np.object_))
    tc.infer("fraud", [inp])
    check(False, "tritonclient: BYTES raises")
except InferenceServerException as e:
    check(e.status() == "400" and "BYTES" in e.message(),
          "tritonclient: BYTES input -> 400 saying so (%s)" % e.message())

# Repository index, unload/load with and without the token.
index = tc.get_model_repository_index()
ready = {(e["name"], e.get("version"), e["state"]) for e in index}
check({("fraud", "fraud-00001", "READY"), ("iris", "iris-00001", "READY")} <= ready,
      "tritonclient: repository index lists every model READY (%s)" % index)
try:
    tc.unload_model("iris")
    check(False, "tritonclient: unload without the token raises")
except InferenceServerException as e:
    check(e.status() == "401", "tritonclient: unload without the admin token -> 401")
check(tc.is_model_ready("iris"), "iris still ready after the refused unload")
tc.unload_model("iris", headers=admin)
check(not tc.is_model_ready("iris"), "tritonclient: unload with the token: iris not ready")
index = {e["name"]: e for e in tc.get_model_repository_index()}
check(index.get("iris", {}).get("state") == "UNAVAILABLE" and
      index["iris"].get("reason") == "unloaded",
      "tritonclient: the index shows iris UNAVAILABLE, unloaded (%s)" % index.get("iris"))
try:
    triton_infer("iris", request_array("iris"), "FP32")
    check(False, "infer on an unloaded model raises")
except InferenceServerException as e:
    check(e.status() == "404", "infer on the unloaded model -> 404 (%s)" % e.message())
try:
    tc.load_model("iris")
    check(False, "tritonclient: load without the token raises")
except InferenceServerException as e:
    check(e.status() == "401", "tritonclient: load without the admin token -> 401")
tc.load_model("iris", headers=admin)
check(tc.is_model_ready("iris"), "tritonclient: load with the token: iris ready when it returns")
r = triton_infer("iris", request_array("iris"), "FP32")
check(bits_equal(r.as_numpy("output-0"), expected("iris")), "iris answers again after load")
try:
    tc.load_model("nosuch", headers=admin)
    check(False, "loading an unknown model raises")
except InferenceServerException as e:
    check(e.status() == "400" and "nosuch" in e.message(),
          "tritonclient: loading an unknown model -> 400 (%s)" % e.message())

# Statistics after N requests.
N = 25
row = x[1:2].copy()
for _ in range(N):
    triton_infer("counted", row, "FP32")
try:
    triton_infer("counted", x[:, :3].copy(), "FP32")
except InferenceServerException:
    pass
st = tc.get_inference_statistics("counted")["model_stats"]
s = st[0] if len(st) == 1 else {}
inf = s.get("inference_stats", {})
check(s.get("name") == "counted" and s.get("version") == "counted-00001",
      "tritonclient: statistics for counted, version counted-00001")
check(s.get("inference_count") == N and inf.get("success", {}).get("count") == N,
      "statistics after %d one-row requests: inference_count and success.count are %d (%s, %s)"
      % (N, N, s.get("inference_count"), inf.get("success")))
check(s.get("execution_count") == N, "execution_count is %d (%s)" % (N, s.get("execution_count")))
check(inf.get("fail", {}).get("count") == 1, "the one bad request is a fail (%s)" % inf.get("fail"))
phases = ("queue", "compute_input", "compute_infer", "compute_output")
check(all(inf.get(p, {}).get("count") == N and inf[p]["ns"] > 0 for p in phases),
      "queue and compute_input/infer/output each count %d with time spent" % N)
check(inf["success"]["ns"] >= sum(inf[p]["ns"] for p in phases),
      "success time covers the phases")
check(s.get("last_inference", 0) > 1.7e12, "last_inference is a Unix time in ms")
every = tc.get_inference_statistics()["model_stats"]
check({e["name"] for e in every} >= {"fraud", "iris", "counted"},
      "tritonclient: statistics of every model")
try:
    tc.get_inference_statistics("nosuch")
    check(False, "statistics of an unknown model raise")
except InferenceServerException as e:
    check(e.status() == "404", "statistics of an unknown model -> 404")
tc.close()

# ------------------------------------------------------------------ KServe SDK (REST)
from kserve import InferenceRESTClient, RESTConfig  # noqa: E402
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput  # noqa: E402
import httpx  # noqa: E402


async def kserve_checks():
    base = "http://%s" % url
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    check(await client.is_server_ready(base), "KServe SDK: server ready")
    check(await client.is_model_ready(base, "fraud"), "KServe SDK: fraud ready")
    for binary, rows, want in ((True, x, expected("fraud")), (False, xn, triton_want_xn)):
        inp = InferInput("input-0", list(rows.shape), "FP32")
        inp.set_data_from_numpy(rows, binary_data=binary)
        req = InferRequest(model_name="fraud", infer_inputs=[inp],
                           request_outputs=[RequestedOutput("output-0", parameters={"binary_data": binary})])
        res = await client.infer(base, req, model_name="fraud")
        check(bits_equal(res.outputs[0].as_numpy(), want),
              "KServe SDK %s input and output: %s bit for bit"
              % (("binary", "XGBoost's predictions") if binary else ("JSON", "the binary answer")))
    inp = InferInput("input-0", list(x.shape), "FP16")
    inp.set_data_from_numpy(x.astype(np.float16), binary_data=True)
    res = await client.infer(base, InferRequest(model_name="fraud", infer_inputs=[inp]),
                             model_name="fraud")
    want = triton_want_fp16
    check(bits_equal(res.outputs[0].as_numpy(), want),
          "KServe SDK FP16 binary input: equal to the same values sent as FP32")
    inp = InferInput("input-0", [1, 3], "FP32")
    inp.set_data_from_numpy(x[:1, :3].copy(), binary_data=True)
    try:
        await client.infer(base, InferRequest(model_name="fraud", infer_inputs=[inp]),
                           model_name="fraud")
        check(False, "KServe SDK: a wrong feature count raises")
    except httpx.HTTPStatusError as e:
        check(e.response.status_code == 400 and "expected 20 features" in str(e),
              "KServe SDK: wrong feature count -> 400 with the reason (%s)" % str(e)[:160])
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=30))
    rows = [[None if np.isnan(v) else float(v) for v in r] for r in x]
    out = await v1.infer(base, {"instances": rows}, model_name="fraud")
    check(bits_equal(np.array(out["predictions"], dtype=np.float32), expected("fraud")),
          "KServe SDK V1 predict: XGBoost's predictions bit for bit")
    await client.close()
    await v1.close()


tc = httpclient.InferenceServerClient(url)
triton_want_fp16 = triton_infer("fraud", x.astype(np.float16).astype(np.float32), "FP32").as_numpy("output-0")
triton_want_xn = triton_infer("fraud", xn, "FP32").as_numpy("output-0")
tc.close()
asyncio.run(kserve_checks())

import json  # noqa: E402
import urllib.request  # noqa: E402
with urllib.request.urlopen("http://%s/v1/models" % url, timeout=10) as resp:
    listed = json.loads(resp.read())
check(sorted(listed["models"]) == ["counted", "fraud", "iris"], "GET /v1/models lists the models")
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
