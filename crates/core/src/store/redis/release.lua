-- Delete the lock only while it is ours, then wake the waiters.
-- KEYS: 1 lock hash. ARGV: 1 token, 2 notification channel
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
