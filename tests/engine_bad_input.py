"""ksv-engine against broken requests: a table of malformed, truncated, mistyped, oversized and
misrouted requests, each answered with the right status and a JSON {"error": "..."}, while
good requests sent between them (on the same keep-alive connection and on fresh ones) keep
answering like XGBoost; a client that dribbles its body gets a 408 without holding up anyone;
a client stalled in its headers holds up no one; afterwards the engine is alive, /metrics
counts the 400s and the error ring holds the request ids that were sent."""
import json
import re
import socket
import threading
import time

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path

MAX_BODY = 32 * 1024
FRAUD_REQ = load_json("requests", "fraud.json")
FRAUD_WANT = load_json("expected", "fraud.json")["data"]
IRIS_V1_REQ = load_json("requests", "iris.v1.json")
IRIS_WANT = load_json("expected", "iris.json")["data"]
FRAUD_BODY = json.dumps(FRAUD_REQ).encode()
INFER = "/v2/models/fraud/infer"

eng = Engine("--model", "fraud=" + model_path("fraud"), "--model", "iris=" + model_path("iris"),
             "--max-body", str(MAX_BODY), "--request-timeout", "2")
check(eng.wait_ready(), "engine ready with fraud and iris")


# ------------------------------------------------------------------------------ raw HTTP

def read_response(sock, deadline):
    """Reads one HTTP/1.1 response with a Content-Length body from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.time()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response headers (%r)" % buf[:200])
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    want = int(hdrs.get("content-length", "0"))
    while len(rest) < want:
        sock.settimeout(max(0.01, deadline - time.time()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    body = rest[:want]
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = body.decode(errors="replace")
    return status, hdrs, payload


def raw_request(data, timeout=5):
    """Sends raw bytes, returns (status, headers, payload); the connection is closed after."""
    sock = socket.create_connection((eng.host, eng.port), timeout=timeout)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything; read its answer
        return read_response(sock, time.time() + timeout)
    finally:
        sock.close()


def head_bytes(method, path, extra=""):
    return ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s\r\n"
            % (method, path, extra)).encode()


# ------------------------------------------------------------------------------ the cases

def fraud_with(**changes):
    """The good fraud request with members of its input tensor changed (None deletes)."""
    tensor = dict(FRAUD_REQ["inputs"][0])
    for k, v in changes.items():
        if v is None:
            tensor.pop(k, None)
        else:
            tensor[k] = v
    return json.dumps({"inputs": [tensor]}).encode()


DATA = FRAUD_REQ["inputs"][0]["data"]
half = len(FRAUD_BODY) // 2
deep = b"[" * 10000 + b"]" * 10000
deep_data = (b'{"inputs":[{"name":"input-0","shape":[1,20],"datatype":"FP32","data":' + deep + b"}]}")
oversized = fraud_with(data=DATA * (2 * MAX_BODY // len(FRAUD_BODY) + 1))
bad_token = {"Authorization": "Bearer not-the-token"}

# (what, method, path, body bytes or None, extra headers, status, model whose ring records it)
CASES = [
    ("malformed JSON", "POST", INFER, b'{"inputs": [}', {}, 400, "fraud"),
    ("truncated JSON after 1 byte", "POST", INFER, FRAUD_BODY[:1], {}, 400, "fraud"),
    ("truncated JSON at 1/4", "POST", INFER, FRAUD_BODY[:len(FRAUD_BODY) // 4], {}, 400, "fraud"),
    ("truncated JSON at 1/2", "POST", INFER, FRAUD_BODY[:half], {}, 400, "fraud"),
    ("truncated JSON before the last brace", "POST", INFER, FRAUD_BODY[:-1], {}, 400, "fraud"),
    ("empty body", "POST", INFER, b"", {}, 400, "fraud"),
    ("a JSON array, not an object", "POST", INFER, b"[1,2,3]", {}, 400, "fraud"),
    ("inputs not a list", "POST", INFER, b'{"inputs": {"name": "input-0"}}', {}, 400, "fraud"),
    ("inputs an empty list", "POST", INFER, b'{"inputs": []}', {}, 400, "fraud"),
    ("shape with strings", "POST", INFER, fraud_with(shape=["6", "20"]), {}, 400, "fraud"),
    ("data with strings for FP32", "POST", INFER, fraud_with(data=[str(v) for v in DATA]), {}, 400,
     "fraud"),
    ("datatype a number", "POST", INFER, fraud_with(datatype=32), {}, 400, "fraud"),
    ("missing inputs", "POST", INFER, b'{"outputs": [{"name": "output-0"}]}', {}, 400, "fraud"),
    ("missing shape", "POST", INFER, fraud_with(shape=None), {}, 400, "fraud"),
    ("missing data", "POST", INFER, fraud_with(data=None), {}, 400, "fraud"),
    ("missing datatype", "POST", INFER, fraud_with(datatype=None), {}, 400, "fraud"),
    ("missing name", "POST", INFER, fraud_with(name=None), {}, 400, "fraud"),
    ("shape/data mismatch (one value short)", "POST", INFER, fraud_with(data=DATA[:-1]), {}, 400,
     "fraud"),
    ("shape overflow [2^32, 2^32]", "POST", INFER, fraud_with(shape=[4294967296, 4294967296]), {},
     400, "fraud"),
    ("negative dimension", "POST", INFER, fraud_with(shape=[-6, 20]), {}, 400, "fraud"),
    ("zero dimension", "POST", INFER, fraud_with(shape=[0, 20], data=[]), {}, 400, "fraud"),
    ("unknown datatype", "POST", INFER, fraud_with(datatype="FP8"), {}, 400, "fraud"),
    ("BYTES for a numeric model", "POST", INFER, fraud_with(datatype="BYTES"), {}, 400, "fraud"),
    ("FP16 past the largest half", "POST", INFER, fraud_with(datatype="FP16", data=[1e6] * 120),
     {}, 400, "fraud"),
    ("wrong feature count (19 of 20)", "POST", INFER, fraud_with(shape=[6, 19], data=DATA[:114]),
     {}, 400, "fraud"),
    ("two inputs", "POST", INFER,
     json.dumps({"inputs": [FRAUD_REQ["inputs"][0], FRAUD_REQ["inputs"][0]]}).encode(), {}, 400,
     "fraud"),
    ("unknown output name", "POST", INFER,
     json.dumps(dict(FRAUD_REQ, outputs=[{"name": "output-1"}])).encode(), {}, 400, "fraud"),
    ("non-UTF-8 bytes in a string", "POST", INFER,
     FRAUD_BODY.replace(b'"input-0"', b'"input-\xff\xfe"'), {}, 400, "fraud"),
    ("non-UTF-8 bytes outside strings", "POST", INFER, b"\xff\xfe" + FRAUD_BODY, {}, 400, "fraud"),
    ("10,000 nested '[' alone", "POST", INFER, b"[" * 10000, {}, 400, "fraud"),
    ("10,000 nested arrays in data", "POST", INFER, deep_data, {}, 400, "fraud"),
    ("huge number literal 1e400", "POST", INFER,
     fraud_with(data=["__BIG__"] + DATA[1:]).replace(b'"__BIG__"', b"1e400"), {}, 400, "fraud"),
    ("a 5,000-digit number literal", "POST", INFER,
     fraud_with(data=["__BIG__"] + DATA[1:]).replace(b'"__BIG__"', b"9" * 5000), {}, 400, "fraud"),
    ("NaN literal", "POST", INFER,
     fraud_with(data=["__X__"] + DATA[1:]).replace(b'"__X__"', b"NaN"), {}, 400, "fraud"),
    ("Infinity literal", "POST", INFER,
     fraud_with(data=["__X__"] + DATA[1:]).replace(b'"__X__"', b"Infinity"), {}, 400, "fraud"),
    ("-Infinity literal", "POST", INFER,
     fraud_with(data=["__X__"] + DATA[1:]).replace(b'"__X__"', b"-Infinity"), {}, 400, "fraud"),
    ("trailing garbage after the object", "POST", INFER, FRAUD_BODY + b" x", {}, 400, "fraud"),
    ("body over --max-body (Content-Length)", "POST", INFER, oversized, {}, 413, None),
    ("unknown model", "POST", "/v2/models/nope/infer", FRAUD_BODY, {}, 404, None),
    ("unknown revision", "POST", "/v2/models/fraud/versions/fraud-00009/infer", FRAUD_BODY, {}, 404,
     None),
    ("unknown path", "GET", "/v2/models/fraud/bogus", None, {}, 404, None),
    ("unknown top-level path", "GET", "/nothing/here", None, {}, 404, None),
    ("wrong method: GET .../infer", "GET", INFER, None, {}, 405, None),
    ("wrong method: DELETE /v2/health/live", "DELETE", "/v2/health/live", None, {}, 405, None),
    ("V1 ragged rows", "POST", "/v1/models/iris:predict",
     b'{"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9]]}', {}, 400, "iris"),
    ("V1 strings in instances", "POST", "/v1/models/iris:predict",
     b'{"instances": [["5.1", "3.5", "1.4", "0.2"]]}', {}, 400, "iris"),
    ("V1 instances not a list", "POST", "/v1/models/iris:predict", b'{"instances": 5}', {}, 400,
     "iris"),
    ("admin API without a token", "GET", "/ksv/v1/state", None, {}, 401, None),
    ("admin API with a wrong token", "GET", "/ksv/v1/state", None, bad_token, 401, None),
    ("admin PUT with a wrong token", "PUT", "/ksv/v1/models/x", b"{}", bad_token, 401, None),
]


def is_error_body(payload):
    return isinstance(payload, dict) and isinstance(payload.get("error"), str) and \
        payload["error"].strip() != ""


good_answers = {"ok": 0, "bad": 0}


def good_request(conn=None):
    """One good V2 request for fraud, or V1 for iris every other time; True when correct."""
    use_v1 = (good_answers["ok"] + good_answers["bad"]) % 2 == 1
    try:
        if use_v1:
            st, _, resp = eng.request("POST", "/v1/models/iris:predict", IRIS_V1_REQ, conn=conn)
            ok = st == 200 and max_abs_diff(resp["predictions"], IRIS_WANT) <= 1e-6
        else:
            st, hdrs, resp = eng.request("POST", INFER, FRAUD_REQ, conn=conn)
            ok = (st == 200 and hdrs.get("ksv-revision") == "fraud-00001" and
                  max_abs_diff(resp["outputs"][0]["data"], FRAUD_WANT) <= 1e-6)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("     good request raised %r" % e)
        ok = False
    good_answers["ok" if ok else "bad"] += 1
    return ok


sent_errors = []   # (request id, status, model) of every error answer the ring may hold
keep = eng.conn()  # one keep-alive connection shared by bad and good requests
for i, (what, method, path, body, extra, want, ring_model) in enumerate(CASES):
    rid = "bad-input-%02d" % i
    headers = dict(extra, **{"x-request-id": rid})
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        st, hdrs, payload = eng.request(method, path, body=body, headers=headers, conn=keep)
    except (OSError, ValueError) as e:
        # http.client reconnects by itself on the next request when the server closed.
        keep.close()
        st, hdrs, payload = None, {}, repr(e)
    check(st == want and is_error_body(payload) and hdrs.get("x-request-id") == rid,
          "%s: %s (got %s %s)" % (what, want, st, str(payload)[:90]))
    if ring_model:
        sent_errors.append((rid, want, ring_model))
    # Good requests in between: the same connection, then a fresh one.
    check(good_request(conn=keep) and good_request(),
          "  good requests after it (same and fresh connection) answer correctly")
keep.close()

# Over --max-body with chunked transfer-encoding: no Content-Length to check up front, so the
# limit is enforced while reading.
chunked = head_bytes("POST", INFER, "Transfer-Encoding: chunked\r\nx-request-id: bad-chunked\r\n")
for k in range(0, len(oversized), 1000):
    piece = oversized[k:k + 1000]
    chunked += b"%x\r\n" % len(piece) + piece + b"\r\n"
chunked += b"0\r\n\r\n"
try:
    st, hdrs, payload = raw_request(chunked)
except OSError as e:
    st, payload = None, repr(e)
check(st == 413 and is_error_body(payload),
      "body over --max-body, chunked: 413 (got %s %s)" % (st, str(payload)[:90]))
# A chunked body under the limit is served.
chunked = head_bytes("POST", INFER, "Transfer-Encoding: chunked\r\n")
for k in range(0, len(FRAUD_BODY), 100):
    piece = FRAUD_BODY[k:k + 100]
    chunked += b"%x\r\n" % len(piece) + piece + b"\r\n"
chunked += b"0\r\n\r\n"
st, hdrs, payload = raw_request(chunked)
check(st == 200 and max_abs_diff(payload["outputs"][0]["data"], FRAUD_WANT) <= 1e-6,
      "a chunked body under the limit is served correctly")
check(good_request() and good_request(), "good requests after the chunked ones")

# Content-Length larger than the body actually sent, then the client closes: nothing to answer,
# and nothing may break.
s = socket.create_connection((eng.host, eng.port), timeout=5)
s.sendall(head_bytes("POST", INFER, "Content-Length: 500\r\n") + FRAUD_BODY[:100])
s.close()
check(good_request(), "a client that hangs up mid-body leaves the engine serving")


# ------------------------------------------------------------------------------ slow clients

def probe_latencies(stop, out):
    conn = eng.conn(timeout=5)
    while not stop.is_set():
        t0 = time.time()
        ok = good_request(conn=conn)
        out.append((time.time() - t0, ok))
        time.sleep(0.05)
    conn.close()


def dribble(result):
    sock = socket.create_connection((eng.host, eng.port), timeout=10)
    t0 = time.time()
    try:
        sock.sendall(head_bytes("POST", INFER,
                                "Content-Length: 100\r\nx-request-id: slow-client\r\n"))
        status = None
        for _ in range(20):
            time.sleep(1)
            try:
                sock.sendall(b" ")
            except OSError:
                break  # the server answered and closed
            sock.setblocking(False)
            try:
                peek = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                peek = None
            sock.setblocking(True)
            if peek is not None:
                break
        status = read_response(sock, time.time() + 5)
        result["status"] = status
    except OSError as e:
        result["status"] = (None, {}, repr(e))
    result["elapsed"] = time.time() - t0
    sock.close()


stop = threading.Event()
lat = []
prober = threading.Thread(daemon=True, target=probe_latencies, args=(stop, lat))
result = {}
slow = threading.Thread(daemon=True, target=dribble, args=(result,))
prober.start()
slow.start()
slow.join(30)
stop.set()
prober.join(10)
st, hdrs, payload = result.get("status", (None, {}, None))
check(st == 408 and is_error_body(payload),
      "a body dribbled at 1 byte/s with --request-timeout 2: 408 (got %s %s)" % (st, payload))
check(result.get("elapsed", 99) <= 4.5, "  answered within ~4 s (%.1f s)" % result.get("elapsed", 99))
worst = max((t for t, _ in lat), default=99)
check(lat and all(ok for _, ok in lat) and worst < 1.0,
      "  meanwhile %d other requests answered correctly, slowest %.3f s" % (len(lat), worst))

# A client stalled in the middle of its headers holds up no one.
stalled = []
for _ in range(4):
    s = socket.create_connection((eng.host, eng.port), timeout=5)
    s.sendall(b"POST /v2/models/fraud/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    stalled.append(s)
lat = []
for _ in range(20):
    t0 = time.time()
    ok = good_request()
    lat.append((time.time() - t0, ok))
worst = max(t for t, _ in lat)
check(all(ok for _, ok in lat) and worst < 1.0,
      "4 clients stalled in their headers: 20 fresh requests answered, slowest %.3f s" % worst)
for s in stalled:
    s.close()

# ------------------------------------------------------------------------------ aftermath

check(eng.proc.poll() is None, "the engine process is still alive")
check(good_answers["bad"] == 0,
      "every good request between the bad ones answered correctly (%d ok, %d wrong)"
      % (good_answers["ok"], good_answers["bad"]))
st, _, metrics = eng.request("GET", "/metrics")
fraud_400 = sum(1 for _, code, m in sent_errors if code == 400 and m == "fraud")
counted = 0
for line in metrics.splitlines() if isinstance(metrics, str) else []:
    m = re.match(r'ksv_requests_total\{(.*)\} (\d+)$', line)
    if m and 'model="fraud"' in m.group(1) and 'code="400"' in m.group(1):
        counted += int(m.group(2))
check(st == 200 and counted == fraud_400,
      "/metrics counts the fraud 400s under ksv_requests_total{...,code=\"400\"} (%d, sent %d)"
      % (counted, fraud_400))
st, _, text = eng.request("GET", "/metrics")
check('code="400"' in text and 'model="iris"' in text, "/metrics has the iris 400s too")

for model in ("fraud", "iris"):
    st, _, ring = eng.request("GET", "/ksv/v1/models/%s/errors" % model, admin=True)
    got = {e["request_id"]: e for e in ring.get("errors", [])} if st == 200 else {}
    # The ring keeps the newest 32: every one of those must be there, with its status.
    want = [(rid, code) for rid, code, m in sent_errors if m == model][-32:]
    missing = [rid for rid, code in want if rid not in got or got[rid]["status"] != code]
    check(st == 200 and want and not missing and all(e.get("message") for e in got.values()),
          "error ring of %s holds the %d newest request ids sent, with statuses (missing %s)"
          % (model, len(want), missing[:5]))
st, _, ring = eng.request("GET", "/ksv/v1/models/fraud/errors")
check(st == 401 and is_error_body(ring), "the error ring needs the token")

check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
