-- wrk script: POST single EventBridge events ("AWS API Call via CloudTrail") to /v1/eventbridge, as an
-- EventBridge API destination does, cycling through pre-generated events. See bench_common.lua.
-- usage: wrk -t1 -c8 -d20s --latency -s eventbridge.lua http://127.0.0.1:PORT -- EVENTS.ndjson TOKEN [RATE] [THREADS]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "bench_common.lua").install({
  path = "/v1/eventbridge",
  rewrite_request_id = false,
  paced = true,
  headers = function(_, secret)
    return {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. secret,
    }
  end,
})
