-- Set the lease to ARGV[2] ms from now, only while the lock is ours.
-- KEYS: 1 lock hash. ARGV: 1 token, 2 ttl ms
if redis.call('TYPE', KEYS[1]).ok == 'hash' and redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
