-- wrk script: POST a claim of the most urgent finance handoff per request
-- to /v1/queue/claim, each request as a worker of its own (an open server
-- takes the worker from the body).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"role":"finance-operator","worker":"w-%d-%d"}',
    math.random(1, 1000000000), counter)
  return wrk.format(nil, "/v1/queue/claim", nil, body)
end
