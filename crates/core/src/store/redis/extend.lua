-- Set the lease to ARGV[2] ms from now, only while the lock is ours.
-- KEYS: 1 lock hash, 2 fence counter. ARGV: 1 token, 2 ttl ms, 3 counter keep ms
-- A key of another type makes HMGET fail: pcall, and it is not ours.
local h = redis.pcall('HMGET', KEYS[1], 'id', 'fence')
if h[1] ~= ARGV[1] then
  return 0
end
-- A lease that ends while the clock is still at or below our fence (it stepped back) would
-- leave nothing that keeps the next fence above ours: keep it in the counter.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
if h[2] and tonumber(h[2]) >= now then
  local px = math.floor(tonumber(h[2]) / 1000) - math.floor(now / 1000) + tonumber(ARGV[3])
  redis.call('SET', KEYS[2], h[2], 'PX', px)
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
