-- wrk script: POST a batch of 100 routine work items per request to
-- /v1/evaluate. Every item has its own id, as with real traffic.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local size = 100
request = function()
  counter = counter + 1
  local run = math.random(1, 1000000000)
  local items = {}
  for n = 1, size do
    items[n] = string.format(
      '{"id":"batch-%d-%d-%d","kind":"reply","agent":"load","text":"Your parcel ships Thursday.","confidence":0.95}',
      run, counter, n)
  end
  return wrk.format(nil, "/v1/evaluate", nil, "[" .. table.concat(items, ",") .. "]")
end
