"""The binary tensor extension through a real ksv-engine (KServe V2 / Triton
binary_tensor_data), spoken with the standard library only, byte by byte:

- every datatype sent in binary gives predictions bit-identical to the same tensor sent as
  JSON, on ksv-xgboost and ksv-forest; binary answers carry Inference-Header-Content-Length
  and Content-Type application/octet-stream, and their floats are the JSON answer's floats;
- hostile bodies (header length past the body, binary_data_size off the shape, overflowing
  sizes, missing tensors, trailing bytes, BYTES, bad header values) are each a 400 with a
  message, on one kept-alive connection whose next good request is answered;
- a binary body over --max-body is a 413 before it is read."""
import json
import math
import struct

from ksvtest import Engine, check, finish, load_json, model_path

MAX_BODY = 200000
eng = Engine("--model", "fraud=%s" % model_path("fraud"),
             "--model", "fraudf=%s,runtime=ksv-forest" % model_path("fraud"),
             "--model", "iris=%s" % model_path("iris"),
             "--max-body", str(MAX_BODY))
for m in ("fraud", "fraudf", "iris"):
    check(eng.wait_ready(m), "%s ready" % m)

FMT = {"FP32": "f", "FP64": "d", "FP16": "e", "BOOL": "?", "INT8": "b", "INT16": "h",
       "INT32": "i", "INT64": "q", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q"}


def binary_body(header, raw):
    h = json.dumps(header).encode()
    return h + raw, len(h)


def post(model, body, header_len=None, conn=None, extra=None):
    headers = {"Content-Type": "application/octet-stream" if header_len is not None
               else "application/json"}
    if header_len is not None:
        headers["Inference-Header-Content-Length"] = str(header_len)
    headers.update(extra or {})
    c = conn or eng.conn()
    c.request("POST", "/v2/models/%s/infer" % model, body=body, headers=headers)
    r = c.getresponse()
    raw = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    if conn is None:
        c.close()
    return r.status, hdrs, raw


def answer_floats(hdrs, raw):
    """The output floats of an answer, binary or JSON, as float32 bit patterns."""
    if "inference-header-content-length" in hdrs:
        n = int(hdrs["inference-header-content-length"])
        head = json.loads(raw[:n])
        out = head["outputs"][0]
        size = out["parameters"]["binary_data_size"]
        tail = raw[n:]
        if size != len(tail) or "data" in out:
            return None, head
        return list(struct.unpack("<%dI" % (size // 4), tail)), head
    head = json.loads(raw)
    vals = head["outputs"][0]["data"]
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in vals], head


def rows_of(model_req):
    t = model_req["inputs"][0]
    return t["shape"], t["data"]


def as_type(dt, v):
    """The value a client holding features of datatype dt would send for v (None: missing)."""
    if dt in ("FP32", "FP64"):
        return float("nan") if v is None else v
    if dt == "FP16":
        return float("nan") if v is None else struct.unpack("<e", struct.pack("<e", v))[0]
    if dt == "BOOL":
        return v is not None and v > 0
    x = 0 if v is None else int(round(v * 4))
    if dt.startswith("U"):
        x = abs(x)
    lim = {"INT8": 127, "UINT8": 255}.get(dt)
    return max(-128, min(lim, x)) if lim else x


def json_value(dt, v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


shape, data = rows_of(load_json("requests", "fraud.json"))
for model in ("fraud", "fraudf"):
    bad = []
    for dt, fmt in FMT.items():
        vals = [as_type(dt, v) for v in data]
        jbody = json.dumps({"inputs": [{"name": "input-0", "shape": shape, "datatype": dt,
                                        "data": [json_value(dt, v) for v in vals]}]})
        st1, h1, raw1 = post(model, jbody)
        bbody, hl = binary_body({"inputs": [{"name": "input-0", "shape": shape, "datatype": dt,
                                             "parameters": {"binary_data_size":
                                                            len(vals) * struct.calcsize(fmt)}}],
                                 "parameters": {"binary_data_output": True}},
                                struct.pack("<%d%s" % (len(vals), fmt), *vals))
        st2, h2, raw2 = post(model, bbody, hl)
        if st1 != 200 or st2 != 200:
            bad.append("%s: %d %s / %d %s" % (dt, st1, raw1[:200], st2, raw2[:200]))
            continue
        f1, _ = answer_floats(h1, raw1)
        f2, head = answer_floats(h2, raw2)
        if f1 != f2 or h2.get("content-type") != "application/octet-stream":
            bad.append("%s: json %s binary %s (%s)" % (dt, f1[:3], f2 and f2[:3],
                                                       h2.get("content-type")))
    check(not bad, "%s: binary input and output of all 12 datatypes equal JSON bit for bit %s"
          % (model, bad[:2]))

# The demo request's FP32 in binary equals XGBoost's own answers (data/expected).
vals = [float("nan") if v is None else v for v in data]
body, hl = binary_body({"id": "b1", "inputs": [{"name": "input-0", "shape": shape,
                                                 "datatype": "FP32",
                                                 "parameters": {"binary_data_size": 4 * len(vals)}}],
                        "outputs": [{"name": "output-0", "parameters": {"binary_data": True}}]},
                       struct.pack("<%df" % len(vals), *vals))
st, h, raw = post("fraud", body, hl)
got, head = answer_floats(h, raw) if st == 200 else (None, None)
want = [struct.unpack("<I", struct.pack("<f", v))[0] for v in load_json("expected", "fraud.json")["data"]]
check(st == 200 and got == want and head["id"] == "b1" and head["model_name"] == "fraud",
      "binary FP32 answer equals XGBoost's own predictions bit for bit, id echoed")
check(h.get("ksv-revision") == "fraud-00001", "binary answer carries ksv-revision")

# Binary input, JSON output when binary_data is false; multi-class shape in binary.
body, hl = binary_body({"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP32",
                                    "parameters": {"binary_data_size": 4 * len(vals)}}],
                        "outputs": [{"name": "output-0", "parameters": {"binary_data": False}}]},
                       struct.pack("<%df" % len(vals), *vals))
st, h, raw = post("fraud", body, hl)
check(st == 200 and "inference-header-content-length" not in h and
      h.get("content-type", "").startswith("application/json") and "data" in json.loads(raw)["outputs"][0],
      "binary input with binary_data false: a JSON answer")
ishape, idata = rows_of(load_json("requests", "iris.json"))
ivals = [float("nan") if v is None else v for v in idata]
body, hl = binary_body({"inputs": [{"name": "input-0", "shape": ishape, "datatype": "FP32",
                                    "parameters": {"binary_data_size": 4 * len(ivals)}}],
                        "parameters": {"binary_data_output": True}},
                       struct.pack("<%df" % len(ivals), *ivals))
st, h, raw = post("iris", body, hl)
got, head = answer_floats(h, raw) if st == 200 else (None, None)
want = [struct.unpack("<I", struct.pack("<f", v))[0] for v in load_json("expected", "iris.json")["data"]]
check(st == 200 and got == want and head["outputs"][0]["shape"] == [5, 3],
      "iris (3 classes) in binary: shape [5,3], XGBoost's probabilities bit for bit")

# Hostile bodies on one kept-alive connection, each followed by a good request.
good_body, good_hl = binary_body({"inputs": [{"name": "input-0", "shape": [1, 20],
                                              "datatype": "FP32",
                                              "parameters": {"binary_data_size": 80}}]},
                                 struct.pack("<20f", *([0.5] * 20)))


def hdr(shape_, dt, size):
    return {"inputs": [{"name": "input-0", "shape": shape_, "datatype": dt,
                        "parameters": {"binary_data_size": size}}]}


hostile = [
    ("header length past the body", *binary_body(hdr([1, 20], "FP32", 80), b"\0" * 80),
     lambda hl: hl + 81, "past the"),
    ("header length not a number", *binary_body(hdr([1, 20], "FP32", 80), b"\0" * 80),
     lambda hl: "12x", "decimal"),
    ("header length cuts the JSON", *binary_body(hdr([1, 20], "FP32", 80), b"\0" * 80),
     lambda hl: hl - 5, "invalid JSON"),
    ("binary_data_size off the shape", *binary_body(hdr([1, 20], "FP32", 76), b"\0" * 76),
     None, "binary_data_size"),
    ("binary_data_size overflows", *binary_body(hdr([1, 20], "FP32", 2 ** 64 + 80), b"\0" * 80),
     None, "below 2^64"),
    ("shape bytes overflow", *binary_body(hdr([2 ** 32, 2 ** 32], "FP64", 0), b""),
     None, "overflows"),
    ("missing tensor", *binary_body(hdr([1, 20], "FP32", 80), b"\0" * 40),
     None, "needs 80 bytes"),
    ("trailing bytes", *binary_body(hdr([1, 20], "FP32", 80), b"\0" * 88),
     None, "8 bytes after the last tensor"),
    ("BYTES", *binary_body(hdr([1, 20], "BYTES", 80), b"\0" * 80), None, "BYTES"),
    ("BOOL byte 7", *binary_body(hdr([1, 20], "BOOL", 20), b"\7" * 20), None, "BOOL byte 7"),
    ("FP32 infinity", *binary_body(hdr([1, 20], "FP32", 80), struct.pack("<20f", *([float("inf")] * 20))),
     None, "infinite"),
    ("wrong feature count", *binary_body(hdr([1, 19], "FP32", 76), b"\0" * 76), None,
     "expected 20 features"),
]
c = eng.conn()
for name, body, hl, hl_fn, want in hostile:
    st, h, raw = post("fraud", body, hl_fn(hl) if hl_fn else hl, conn=c)
    try:
        msg = json.loads(raw).get("error", "")
    except ValueError:
        msg = ""
    check(st == 400 and want in msg, "%s: 400 \"%s\" (got %d %s)" % (name, want, st, msg[:120]))
    st, h, raw = post("fraud", good_body, good_hl, conn=c)
    check(st == 200, "%s: the next good request on the connection is answered" % name)
c.close()

# binary_data_size in a plain JSON request (no header) is refused with the reason.
st, _, r = eng.request("POST", "/v2/models/fraud/infer", hdr([1, 20], "FP32", 80))
check(st == 400 and "Inference-Header-Content-Length" in r["error"],
      "binary_data_size without the header: 400 naming the header")

# Over --max-body: 413 from the Content-Length, before the body is read.
big = MAX_BODY // 80 + 10
body, hl = binary_body(hdr([big, 20], "FP32", big * 80), b"\0" * (big * 80))
st, _, raw = post("fraud", body, hl)
check(st == 413, "a binary body over --max-body: 413 (got %d)" % st)
st, _, _ = post("fraud", good_body, good_hl)
check(st == 200, "after the 413 the engine still answers")

# /v2 says it serves the extension.
st, _, meta = eng.request("GET", "/v2")
check("binary_tensor_data" in meta.get("extensions", []), "/v2 lists binary_tensor_data")
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
