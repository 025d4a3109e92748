-- Delete the lock only while it is ours, then wake the waiter first in line (or everyone, with
-- an empty message, when nobody is queued).
-- KEYS: 1 lock hash, 2 waiter queue. ARGV: 1 token, 2 notification channel, 3 '1' to publish
-- on the sharded channel (Redis Cluster)
if redis.call('TYPE', KEYS[1]).ok == 'hash' and redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  local next = redis.call('ZRANGE', KEYS[2], 0, 0)[1] or ''
  -- Sharded pub/sub stays on the slot's shard; a server without it gets a classic PUBLISH.
  if not (ARGV[3] == '1' and pcall(redis.call, 'SPUBLISH', ARGV[2], next)) then
    redis.call('PUBLISH', ARGV[2], next)
  end
  return 1
end
return 0
