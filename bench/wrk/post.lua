-- wrk script for bench/run.mjs: POSTs a JSON body with an optional bearer,
-- and prints one JSON summary line (latency percentiles in microseconds).
--   BENCH_BODY   request body (JSON text)
--   BENCH_AUTH   value of the Authorization header (optional)
--   BENCH_NONCE  "1": add a unique "benchNonce" field to every body (cache misses)
--   BENCH_METHOD GET or POST (default POST)
local body = os.getenv("BENCH_BODY") or "{}"
local auth = os.getenv("BENCH_AUTH")
local nonce = os.getenv("BENCH_NONCE") == "1"
local method = os.getenv("BENCH_METHOD") or "POST"

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = method
  wrk.headers["content-type"] = "application/json"
  if auth and auth ~= "" then wrk.headers["authorization"] = auth end
  if method == "GET" then wrk.body = nil else wrk.body = body end
  n = 0
end

function request()
  if nonce then
    n = n + 1
    local b = body:gsub("}%s*$", string.format(',"benchNonce":"%d-%d"}', tid or 0, n))
    return wrk.format(nil, nil, nil, b)
  end
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
