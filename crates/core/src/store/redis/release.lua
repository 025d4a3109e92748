-- Delete the lock only while it is ours, then wake the waiter first in line (or everyone, with
-- an empty message, when nobody is queued).
-- KEYS: 1 lock hash, 2 waiter queue. ARGV: 1 token, 2 notification channel
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], redis.call('ZRANGE', KEYS[2], 0, 0)[1] or '')
  return 1
end
return 0
