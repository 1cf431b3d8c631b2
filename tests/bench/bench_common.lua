-- bench_common.lua: shared wrk hooks for the newtermsd benchmark (loaded by firehose.lua and eventbridge.lua).
--
-- Bodies: one per line of an NDJSON file written by gen_deliveries.py. Every request is formatted ONCE, in
-- init(): for Firehose bodies, IDS (default 2) copies of each body with distinct requestIds (the part of the
-- line after `"requestId":"` up to the next quote is replaced; the same id goes into
-- X-Amz-Firehose-Request-Id), so the set of distinct request ids is bodies x IDS per thread. request() only
-- hands out the next pre-built string. (Building a fresh 1.28 MB body per request made wrk's core the
-- bottleneck: the service sat at ~20% CPU and "full load" measured the client.) Each wrk thread cycles
-- through all of them, starting at a different offset.
--
-- Rate limiting (wrk2 is not in Debian): when a rate is given, each thread owns an equal share of the
-- request budget and hands out send slots at start + k/rate; wrk's delay() hook holds a connection until its
-- slot comes (clock_gettime through LuaJIT's ffi). Latency is measured by wrk from the moment the request is
-- written, so waiting for a slot is not counted; as long as the server keeps up the load is open-loop-like.
--
-- done() prints one line "BENCH_JSON {...}" with requests, duration, request-body bytes sent, error counts
-- and latency percentiles in microseconds, which run.sh parses.
local M = {}

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 1

-- cfg = { path = "/v1/firehose", headers = function(id) return {..} end, rewrite_request_id = bool }
function M.install(cfg)
  local reqs, sizes, n = {}, {}, 0
  local idx, sent = 0, 0
  local rate, slot_ms, next_slot = 0, 0, nil
  local nonce = ""

  function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
    table.insert(threads, thread)
  end

  function init(args)
    local file = args[1]
    cfg.secret = args[2] or ""
    local total_rate = tonumber(args[3] or "0") or 0
    -- init() runs in the thread's own Lua state before later threads exist, so the count comes from run.sh
    local nthreads = tonumber(args[4] or "1") or 1
    nonce = args[5] or tostring(os.time())
    local ids = tonumber(args[6] or "2") or 2
    if not file then
      error("usage: wrk ... -s script.lua URL -- BODIES.ndjson SECRET [RATE_PER_S] [THREADS] [NONCE] [IDS]")
    end
    local tid = tonumber(wrk.thread:get("tid")) or 1
    local lines = {}
    for line in io.lines(file) do
      if #line > 0 then lines[#lines + 1] = line end
    end
    if #lines == 0 then error("no bodies in " .. file) end
    for copy = 1, (cfg.rewrite_request_id and ids or 1) do
      for i, line in ipairs(lines) do
        local body, hdrs
        if cfg.rewrite_request_id then
          local _, e = line:find('"requestId":"', 1, true)
          local q = line:find('"', e + 1, true)
          local rid = string.format("bench-%s-%d-%d-%d", nonce, tid, copy, i)
          body = line:sub(1, e) .. rid .. line:sub(q)
          hdrs = cfg.headers(rid, cfg.secret)
        else
          body = line
          hdrs = cfg.headers(nil, cfg.secret)
        end
        n = n + 1
        reqs[n] = wrk.format("POST", cfg.path, hdrs, body)
        sizes[n] = #body
      end
    end
    idx = ((tid - 1) * 7) % n
    if total_rate > 0 then
      rate = total_rate / nthreads
      slot_ms = 1000 / rate
    end
  end

  function request()
    idx = idx % n + 1
    sent = sent + sizes[idx]
    wrk.thread:set("sent", sent)
    return reqs[idx]
  end

  if cfg.paced then
    function delay()
      if rate <= 0 then return 0 end
      local now = now_ms()
      if not next_slot then next_slot = now end
      local wait = next_slot - now
      next_slot = next_slot + slot_ms
      if wait < 0 then
        -- Late (every connection was busy when the slot came): send now, and count the next slot from
        -- now. Missed slots are dropped, as k6's constant-arrival-rate executor drops iterations it has
        -- no free connection for, instead of being sent later as a burst of catch-up requests: that
        -- burst (all 8 connections at once) was what a paced step measured after any hiccup. The
        -- achieved rate is reported, and report.py flags a paced step that fell short of its rate.
        next_slot = now + slot_ms
        return 0
      end
      return math.floor(wait + 0.5)
    end
  end

  function done(summary, latency, requests)
    local sent_total = 0
    for _, t in ipairs(threads) do
      sent_total = sent_total + (tonumber(t:get("sent")) or 0)
    end
    local e = summary.errors
    local out = string.format(
      '{"requests":%d,"duration_us":%d,"sent_bytes":%d,"recv_bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"lat_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}',
      summary.requests, summary.duration, sent_total, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.max, latency.mean)
    io.write("BENCH_JSON " .. out .. "\n")
  end
end

return M
