-- post.lua: wrk script of the HTTP benchmark: POSTs one V2 infer body, reports in one line.
--
--   KSV_BENCH_BODY=FILE wrk -t2 -c32 -d10s --latency -s bench/http/post.lua URL
--
-- The body is read once per wrk thread when the script loads, and wrk.method/body/headers
-- are set at the top level (no request() function), so wrk sends one pre-built request and
-- its own speed is not spent in Lua. done() prints a line that run-http-bench.sh parses:
--   KSVBENCH requests=N duration_us=N rps=R non2xx=N socket_errors=N p50_us=N p90_us=N
--            p99_us=N max_us=N
-- (latencies from wrk's histogram, in microseconds, the same numbers as --latency shows).

local path = os.getenv("KSV_BENCH_BODY")
if not path or path == "" then
   error("post.lua: set KSV_BENCH_BODY to the file holding the request body")
end
local file = assert(io.open(path, "rb"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.body = body
-- KSV_BENCH_HEADER_LEN: the body is binary tensor data whose JSON header is that long.
local header_len = os.getenv("KSV_BENCH_HEADER_LEN")
if header_len and header_len ~= "" then
   wrk.headers["Content-Type"] = "application/octet-stream"
   wrk.headers["Inference-Header-Content-Length"] = header_len
else
   wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      "KSVBENCH requests=%d duration_us=%d rps=%.1f non2xx=%d socket_errors=%d " ..
      "p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, summary.requests / seconds, e.status,
      e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
