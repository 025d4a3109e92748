-- Redlock: record in our lock the fence the majority agreed on, and make sure this master's
-- next fence is higher still: when that fence is not below this master's clock, the counter
-- keeps it (until the clock has passed it by `keep`).
-- KEYS: 1 lock hash, 2 fence counter. ARGV: 1 token, 2 fence, 3 counter keep ms
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local fence = tonumber(ARGV[2])
-- Whether decimal integer `a` is below `b`, exactly (doubles are not beyond 2^53).
local function below(a, b)
  return #a < #b or (#a == #b and a < b)
end
if fence >= now then
  local last = redis.call('GET', KEYS[2])
  if not last or below(last, ARGV[2]) then
    local px = math.floor(fence / 1000) - math.floor(now / 1000) + tonumber(ARGV[3])
    redis.call('SET', KEYS[2], ARGV[2], 'PX', px)
  end
end
-- A key of another type makes HGET fail: pcall, and it is not ours.
if redis.pcall('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'fence', ARGV[2])
  return 1
end
return 0
