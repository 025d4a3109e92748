-- Delete the lock only while it is ours. When someone waits, wake the waiter first in line
-- (or every waiter, with an empty message, when only waiters that do not queue are left).
-- KEYS: 1 lock hash, 2 fence counter, 3 waiter queue. ARGV: 1 token, 2 counter keep ms,
-- 3 notification channel, 4 '1' to publish on the sharded channel (Redis Cluster)
-- A key of another type makes HMGET fail: pcall, and it is not ours.
local h = redis.pcall('HMGET', KEYS[1], 'id', 'fence', 'waiting')
if h[1] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
-- The next fence is the clock, once the clock has passed ours; until then the counter keeps
-- ours (a clock that did not advance, or stepped back), for `keep` past our fence's time.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
if h[2] and tonumber(h[2]) >= now then
  local px = math.floor(tonumber(h[2]) / 1000) - math.floor(now / 1000) + tonumber(ARGV[2])
  redis.call('SET', KEYS[2], h[2], 'PX', px)
end
if h[3] then
  local next = redis.call('ZRANGE', KEYS[3], 0, 0)[1] or ''
  -- Sharded pub/sub stays on the slot's shard; a server without it gets a classic PUBLISH.
  if not (ARGV[4] == '1' and pcall(redis.call, 'SPUBLISH', ARGV[3], next)) then
    redis.call('PUBLISH', ARGV[3], next)
  end
end
return 1
