"""A real llama.cpp server through ksv (docs/OPERATIONS.md): two tiny GGUF llama models written here
with gguf-py (tests/data/make_tiny_gguf.py: random weights, a real BPE tokenizer), served by
the shipped llama-cpp runtime (llama-server from scripts/runtimes.sh) chosen by model format.
Covers the OpenAI routes (models, completions, chat), streaming relayed chunk by chunk (the
first chunks reach the client well before the last), a client that disconnects cancelling
the upstream generation, the token metrics and ksv-top's TTFT P99 and tokens/s, a canary between two GGUF revisions with the
split respected, a runtime that crashes while loading (a truncated GGUF: the revision fails
with llama.cpp's own last lines, the split stays), and history."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

from ksvtest import ENGINE, ksv_cli_merged, SRCDIR, TOP, check, finish, lock_pid, tmpdir

work = tmpdir("ksv-llama-")
node_dir = os.path.join(work, "node")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), XDG_STATE_HOME=os.path.join(work, "state"),
           KSV_ENGINE=ENGINE, USER="tester")
venv = subprocess.run(["sh", os.path.join(SRCDIR, "scripts", "runtimes.sh"), "path"],
                      capture_output=True, text=True).stdout.strip()


ksv = ksv_cli_merged(env, timeout=300)


def address():
    with open(os.path.join(node_dir, "address")) as f:
        return f.read().strip()


def call(method, path, body=None, admin=False, timeout=120):
    h = {"Content-Type": "application/json"}
    if admin:
        with open(os.path.join(node_dir, "token")) as f:
            h["Authorization"] = "Bearer " + f.read().strip()
    c = http.client.HTTPConnection(*address().rsplit(":", 1), timeout=timeout)
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data), dict(r.getheaders())
    except ValueError:
        return r.status, {"raw": data.decode("utf-8", "replace")}, dict(r.getheaders())


def metric(name, labels):
    st, body, _ = call("GET", "/metrics")
    total = 0.0
    for line in body.get("raw", "").splitlines():
        if line.startswith(name) and all(l in line for l in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


def manifest(name, text):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def isvc(uri, canary=None):
    return """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: chat
  annotations:
    ksv.io/rollback-window: "120"
spec:
  predictor:
%s    model:
      modelFormat:
        name: gguf
      storageUri: %s
""" % ("    canaryTrafficPercent: %d\n" % canary if canary is not None else "", uri)


def stream(body, read_limit=None):
    """POSTs a streaming completion on a raw socket; returns (status line, [(t, event)]).
    read_limit: stop reading (and close) after that many events."""
    host, port = address().rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=60)
    data = json.dumps(body).encode()
    s.sendall(b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    t0 = time.time()
    buf, events, head = b"", [], None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        now = time.time() - t0
        buf += chunk
        if head is None and b"\r\n\r\n" in buf:
            head, buf = buf.split(b"\r\n\r\n", 1)
        if head is None:
            continue
        while b"data: " in buf and b"\n\n" in buf[buf.index(b"data: "):]:
            start = buf.index(b"data: ")
            end = buf.index(b"\n\n", start)
            events.append((now, buf[start + 6:end].decode("utf-8", "replace")))
            buf = buf[end + 2:]
        if read_limit and len(events) >= read_limit:
            break
        if events and events[-1][1] == "[DONE]":
            break
    s.close()
    return (head or b"").split(b"\r\n")[0].decode(), events, (head or b"").decode("latin-1")


try:
    check(os.access(os.path.join(venv, "bin", "llama-server"), os.X_OK),
          "llama-server is installed in %s (scripts/runtimes.sh install)" % venv)
    make = [os.path.join(venv, "bin", "python"), os.path.join(SRCDIR, "tests", "data", "make_tiny_gguf.py")]
    tiny1, tiny2 = os.path.join(work, "tiny-1.gguf"), os.path.join(work, "tiny-2.gguf")
    for path, seed in ((tiny1, "1"), (tiny2, "2")):
        r = subprocess.run(make + [path, seed], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0 and os.path.getsize(path) > 100000,
              "gguf-py wrote a tiny llama model (seed %s): %s" % (seed, r.stderr[-200:]))
    rc, out = ksv("node", "add", "local", "local", "--engine-state-dir", node_dir)
    check(rc == 0, "node add local")
    t0 = time.time()
    rc, out = ksv("apply", "-f", manifest("chat.yaml", isvc(tiny1)), "--timeout", "240")
    check(rc == 0 and "in effect" in out, "the GGUF model is served by llama.cpp in %.1f s: %s" %
          (time.time() - t0, out.strip()))
    rc, out = ksv("get", "revisions", "chat")
    check("llama-cpp" in out, "the shipped llama-cpp runtime was chosen by the gguf format")

    st, body, _ = call("GET", "/openai/v1/models")
    check(st == 200 and [m["id"] for m in body.get("data", [])] == ["chat"], "GET /openai/v1/models: %s" % body)
    st, body, hdr = call("POST", "/openai/v1/completions",
                         {"model": "chat", "prompt": "the", "max_tokens": 8, "temperature": 0})
    text = body.get("choices", [{}])[0].get("text") if st == 200 else None
    check(st == 200 and text and body.get("usage", {}).get("completion_tokens") == 8,
          "a completion from the tiny model: %d %r %s" % (st, text, body.get("usage")))
    check(hdr.get("ksv-revision") == "chat-00001", "ksv-revision on an OpenAI answer")
    st, body, _ = call("POST", "/openai/v1/completions", {"model": "nope", "prompt": "x"})
    check(st == 404 and "nope" in body.get("error", ""), "an unknown model: 404 JSON error")
    st, body, _ = call("POST", "/openai/v1/completions", {"prompt": "x"})
    check(st == 400 and "model" in body.get("error", ""), "no model in the body: 400")

    # --- streaming, chunk by chunk ---------------------------------------------------
    # 1000 tokens: long enough that the stream spans whole seconds even when the tiny model
    # is fast, so a relay that held chunks back shows, and a client that the loaded machine
    # descheduled for a moment still reads in many pieces.
    status, events, head = stream({"model": "chat", "stream": True, "max_tokens": 1000, "temperature": 0,
                                   "stream_options": {"include_usage": True},
                                   "messages": [{"role": "user", "content": "hello there"}]})
    data = [e for e in events if e[1] != "[DONE]"]
    check(status.endswith("200 OK") and "text/event-stream" in head and events and events[-1][1] == "[DONE]",
          "a streamed chat completion ends with [DONE]: %s, %d events" % (status, len(events)))
    arrivals = sorted(set(round(t, 3) for t, _ in data))
    span = events[-1][0] - events[0][0] if events else 0
    check(len(data) >= 20 and len(arrivals) >= 5 and span > 0.05,
          "chunks arrive as they are generated: %d events in %d separate reads over %.3f s" %
          (len(data), len(arrivals), span))
    contents = []
    for _, e in data:
        try:
            contents.append(json.loads(e))
        except ValueError:
            pass
    check(any(c.get("choices") and c["choices"][0].get("delta", {}).get("content") for c in contents),
          "the events are OpenAI chat chunks with content deltas")
    check(metric("ksv_llm_time_to_first_token_seconds_count", ['model="chat"']) >= 1,
          "ksv_llm_time_to_first_token_seconds counts the stream")
    check(metric("ksv_llm_generation_tokens_total", ['model="chat"']) >= 200 and
          metric("ksv_llm_prompt_tokens_total", ['model="chat"']) > 0,
          "generation and prompt tokens counted (%.0f, %.0f)" %
          (metric("ksv_llm_generation_tokens_total", ['model="chat"']),
           metric("ksv_llm_prompt_tokens_total", ['model="chat"'])))
    check(metric("ksv_llm_time_per_output_token_seconds_count", ['model="chat"']) >= 1,
          "ksv_llm_time_per_output_token_seconds has a sample")

    # --- ksv-top: TTFT P99 and tokens/s, from the engine's token figures -------------------
    # Streams run in the background while ksv-top takes its two probes; the client side
    # times each stream's first event and counts its tokens, the yardsticks for ksv-top's.
    stop, firsts, produced = threading.Event(), [], []

    def generated(event):
        try:
            c = json.loads(event).get("choices") or [{}]
        except ValueError:
            return False
        return bool(c[0].get("delta", {}).get("content"))

    def traffic():
        while not stop.is_set():
            t_start = time.time()
            _, evs, _ = stream({"model": "chat", "stream": True, "max_tokens": 12, "temperature": 0,
                                "messages": [{"role": "user", "content": "count"}]})
            gen = [t for t, e in evs if generated(e)]
            if gen:
                firsts.append(gen[0])  # the first event that carries generated text
                produced.append((t_start, time.time(), len(gen)))

    bg = threading.Thread(daemon=True, target=traffic)
    bg.start()
    try:
        time.sleep(1.5)
        before = metric("ksv_llm_generation_tokens_total", ['model="chat"'])
        r = subprocess.run([TOP, "--once", "-o", "json", "-d", "2"], capture_output=True, text=True,
                           env=env, timeout=120)
        during = metric("ksv_llm_generation_tokens_total", ['model="chat"']) - before
    finally:
        stop.set()
        bg.join(120)
    snap = json.loads(r.stdout) if r.returncode == 0 else {}
    chat = [m for m in snap.get("models", []) if m.get("name") == "chat"]
    ttft = chat[0].get("ttft_p99_ms") if chat else None
    tps = chat[0].get("tokens_per_s") if chat else None
    span = produced[-1][1] - produced[0][0] if produced else 0
    client_tps = sum(p[2] for p in produced) / span if span > 0 else 0
    print("ksv-top: TTFT P99 %s ms (client's slowest first event %.1f ms), %s tokens/s "
          "(client side %.1f)" % (ttft, max(firsts or [0]) * 1000, tps, client_tps))
    check(r.returncode == 0 and chat and isinstance(ttft, float) and isinstance(tps, float),
          "ksv-top --once -o json shows ttft_p99_ms and tokens_per_s for the GGUF model: %s" %
          (chat[0] if chat else r.stderr[-300:]))
    # Only streams that ended between ksv-top's two probes are in its window. The engine
    # times the first token from the request's arrival to the chunk's arrival from
    # llama.cpp, inside what the client saw from its send to its read; the fine histogram's
    # quantile is within 1.6 %.
    check(ttft is not None and 0 < ttft <= max(firsts or [0]) * 1000 * 1.02 + 1,
          "TTFT P99 within what the clients measured")
    # ksv-top's two probes are at least half its 2 s interval apart and inside its run, so
    # its window holds at most the tokens the engine counted during the run, over >= 1 s.
    check(tps is not None and 0 < tps <= during / 1.0,
          "tokens/s within what the engine generated meanwhile (%.1f/s; %d tokens during "
          "ksv-top's run)" % (tps or 0, during))
    revs = chat[0].get("revisions", []) if chat else []
    check(revs and all("ttft_p99_ms" in rv for rv in revs), "and per revision")

    # --- a client that leaves cancels the upstream generation ------------------------------
    status, events, _ = stream({"model": "chat", "stream": True, "max_tokens": 1900, "temperature": 0,
                                "messages": [{"role": "user", "content": "go on"}]}, read_limit=3)
    t_left = time.time()
    deadline = t_left + 20
    while time.time() < deadline and metric("ksv_inflight_requests", ['model="chat"']) > 0:
        time.sleep(0.05)
    freed = time.time() - t_left
    check(metric("ksv_inflight_requests", ['model="chat"']) == 0,
          "the request ends soon after the client left (%.2f s): the upstream was cancelled" % freed)
    st, lg, _ = call("GET", "/ksv/v1/models/chat/revisions/chat-00001/logs", admin=True)
    st, body, _ = call("POST", "/openai/v1/completions",
                       {"model": "chat", "prompt": "the", "max_tokens": 4, "temperature": 0})
    check(st == 200, "the runtime serves on after a cancelled stream")

    # --- canary between two GGUF revisions -------------------------------------------
    rc, out = ksv("apply", "-f", manifest("chat-canary.yaml", isvc(tiny2, canary=30)), "--timeout", "240")
    check(rc == 0, "canary: the second GGUF revision at 30%: " + out.strip())
    seen = {}
    n = 80
    for _ in range(n):
        st, body, hdr = call("POST", "/openai/v1/completions",
                             {"model": "chat", "prompt": "a", "max_tokens": 1, "temperature": 0})
        seen[hdr.get("ksv-revision")] = seen.get(hdr.get("ksv-revision"), 0) + 1
    share = seen.get("chat-00002", 0) / n
    check(set(seen) == {"chat-00001", "chat-00002"} and 0.15 <= share <= 0.45,
          "the 70/30 split is respected: %s" % seen)

    rc, out = ksv("rollout", "promote", "chat")
    check(rc == 0, "promote the GGUF canary: " + out.strip())

    # --- a runtime that crashes while loading -----------------------------------------
    broken = os.path.join(work, "broken.gguf")
    with open(tiny1, "rb") as f, open(broken, "wb") as g:
        g.write(f.read()[:60000])
    rc, out = ksv("apply", "-f", manifest("chat-broken.yaml", isvc(broken, canary=10)), "--timeout", "240")
    check(rc != 0 and "before it became ready" in out, "a truncated GGUF: the revision fails: " + out.strip()[-300:])
    st, state, _ = call("GET", "/ksv/v1/models/chat", admin=True)
    failed = [r for r in state.get("revisions", []) if r["name"] == "chat-00003"]
    check(failed and failed[0]["state"] == "failed" and "llama" in failed[0].get("error", "").lower(),
          "its error carries llama.cpp's last lines: %s" % (failed[0].get("error", "")[-200:] if failed else state))
    check(state.get("effective_traffic") == {"chat-00002": 100},
          "the promoted revision keeps serving all traffic: %s" % state.get("effective_traffic"))
    st, body, _ = call("POST", "/openai/v1/completions", {"model": "chat", "prompt": "a", "max_tokens": 1})
    check(st == 200, "and answers")

    rc, out = ksv("history", "chat")
    check(rc == 0 and "promote" in out and "canary at 30%" in out, "history of the GGUF rollout:\n" + out)
finally:
    pid = lock_pid(node_dir)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.time() + 30
            while time.time() < deadline and lock_pid(node_dir):
                time.sleep(0.1)
        except ProcessLookupError:
            pass
finish()
