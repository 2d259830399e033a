-- wrk script: POST one routine work item per request to /v1/evaluate.
-- Each request gets its own item id, so self-correction tracking and the
-- decision table see distinct items, as with real traffic.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"id":"load-%d-%d","kind":"reply","agent":"load","text":"Your parcel ships Thursday.","confidence":0.95}',
    math.random(1, 1000000000), counter)
  return wrk.format(nil, "/v1/evaluate", nil, body)
end
