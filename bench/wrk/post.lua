-- wrk script for bench/run.mjs: POSTs a JSON body with an optional bearer,
-- and prints one JSON summary line (latency percentiles in microseconds).
--   BENCH_BODY    request body (JSON text, a flat object ending in "}")
--   BENCH_AUTH    value of the Authorization header (optional)
--   BENCH_VARY    a field name: every request sets it to a value of its own
--                 (a digit string no product id has), so a field that is part
--                 of plumgate's cache key makes every request a cache miss.
--                 The field must not already be in BENCH_BODY.
--   BENCH_VARY_SEED  a number of this wrk run's own (the values start over
--                 with each run; the seed keeps two runs' values apart)
--   BENCH_METHOD  GET or POST (default POST)
--   BENCH_EXPECT_CACHE  when set, count the answers whose x-plumgate-cache
--                 header is not this value ("hit", "miss"); reported as
--                 "cache_mismatch" (the header is looked up only when set).
-- "non2xx" counts the answers whose status is not 2xx (read in response();
-- wrk's "status_errors" counts only statuses above 399).
local body = os.getenv("BENCH_BODY") or "{}"
local auth = os.getenv("BENCH_AUTH")
local vary = os.getenv("BENCH_VARY")
if vary == "" then vary = nil end
local seed = tonumber(os.getenv("BENCH_VARY_SEED") or "0") or 0
local method = os.getenv("BENCH_METHOD") or "POST"
local expect_cache = os.getenv("BENCH_EXPECT_CACHE")
if expect_cache == "" then expect_cache = nil end

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
  mismatch = 0
  non2xx = 0
end

function request()
  if vary then
    n = n + 1
    -- 9, the run's seed, the thread, then the count: never a sandbox
    -- product id (5 digits), never another request's value.
    local b = body:gsub("}%s*$", string.format(',"%s":"9%04d%d%09d"}', vary, seed, tid or 0, n))
    return wrk.format(nil, nil, nil, b)
  end
  return wrk.format()
end

-- Every answer's status is read here: wrk's own status errors count only
-- statuses above 399, and a 3xx is no more the path's answer than a 429.
-- (Defining response() makes wrk hand each answer to Lua, a small cost to
-- the load generator, the same for every row.)
function response(status, headers, body)
  if status < 200 or status >= 300 then non2xx = non2xx + 1 end
  if expect_cache then
    local v = headers["x-plumgate-cache"]
    if v == nil then
      for k, x in pairs(headers) do
        if string.lower(k) == "x-plumgate-cache" then v = x end
      end
    end
    if v ~= expect_cache then mismatch = mismatch + 1 end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local mismatches, non2xx_all = 0, 0
  for _, t in ipairs(threads) do
    mismatches = mismatches + (t:get("mismatch") or 0)
    non2xx_all = non2xx_all + (t:get("non2xx") or 0)
  end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,"cache_mismatch":%d,"non2xx":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max, mismatches, non2xx_all))
end
