-- wrk: one new patient's booking per request, each in a slot of its own (provider by counter, hour by counter
-- and thread), so no request meets another's slot. TARGET=worker posts the form's JSON to the worker;
-- TARGET=rpc posts book_appointment's arguments straight to the RPC API (the database path without the
-- worker). Reads the bench providers' ids from BENCH_PROVIDERS (one per line); prints one RESULT line.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  providers = {}
  for line in io.lines(os.getenv("BENCH_PROVIDERS")) do
    table.insert(providers, line)
  end
  target = os.getenv("TARGET")
  key = os.getenv("SERVICE_ROLE_KEY")
  base = os.time() + 2 * 86400 - os.time() % 3600
  counter = 0
end

function request()
  counter = counter + 1
  local provider = providers[counter % #providers + 1]
  local hours = math.floor(counter / #providers) * 4 + id
  local start = os.date("!%Y-%m-%dT%H:00:00Z", base + hours * 3600)
  local email = string.format("load.%d.%d.%d@example.com", id, counter, base)
  if target == "rpc" then
    local body = string.format('{"p_request_id":"load-%d-%d-%d","p_provider_id":"%s","p_payer_id":"cash-payment",'
      .. '"p_start":"%s","p_location_type":"telehealth","p_patient":{"first_name":"Load","last_name":"Tester","email":"%s"}}',
      id, counter, base, provider, start, email)
    return wrk.format("POST", "/rest/v1/rpc/book_appointment",
      { ["Content-Type"] = "application/json", ["apikey"] = key, ["Authorization"] = "Bearer " .. key }, body)
  end
  local body = string.format('{"patient":{"firstName":"Load","lastName":"Tester","email":"%s"},"providerId":"%s",'
    .. '"payerId":"cash-payment","start":"%s","locationType":"telehealth"}', email, provider, start)
  return wrk.format("POST", "/api/patient-booking/book-v2", { ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50=%.2f p95=%.2f p99=%.2f requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
