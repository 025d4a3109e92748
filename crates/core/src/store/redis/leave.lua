-- A waiter gives up: leave the queue, and wake the next one in line if the lock is free.
-- KEYS: 1 lock hash, 2 waiter queue, 3 waiter liveness. ARGV: 1 token, 2 notification channel,
-- 3 '1' to publish on the sharded channel (Redis Cluster)
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if removed == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  local next = redis.call('ZRANGE', KEYS[2], 0, 0)[1] or ''
  if not (ARGV[3] == '1' and pcall(redis.call, 'SPUBLISH', ARGV[2], next)) then
    redis.call('PUBLISH', ARGV[2], next)
  end
end
return removed
