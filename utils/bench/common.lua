-- Shared by every wrk scenario of utils/bench: counts answers by status in
-- each thread and prints one machine-readable line when wrk is done.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

ok, refused, other = 0, 0, 0

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 409 then
    refused = refused + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local n = { ok = 0, refused = 0, other = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(n) do
      n[k] = n[k] + t:get(k)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"ok":%d,"refused":%d,"other":%d,' ..
    '"errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, n.ok, n.refused, n.other,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
