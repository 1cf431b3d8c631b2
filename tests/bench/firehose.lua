-- wrk script: POST Firehose HTTP-endpoint deliveries to /v1/firehose, cycling through pre-generated bodies
-- (a fresh requestId per request; optional pacing). See bench_common.lua.
-- usage: wrk -t1 -c8 -d20s --latency -s firehose.lua http://127.0.0.1:PORT -- BODIES.ndjson ACCESS_KEY [RATE] [THREADS]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "bench_common.lua").install({
  path = "/v1/firehose",
  rewrite_request_id = true,
  paced = true,
  headers = function(rid, secret)
    return {
      ["Content-Type"] = "application/json",
      ["X-Amz-Firehose-Protocol-Version"] = "1.0",
      ["X-Amz-Firehose-Request-Id"] = rid,
      ["X-Amz-Firehose-Access-Key"] = secret,
    }
  end,
})
