-- Redlock: raise this master's fence counter (and the fence recorded in our lock) to the fence
-- the majority agreed on, so the next owner's fence on this master is higher still.
-- KEYS: 1 lock hash, 2 fence counter. ARGV: 1 token, 2 fence, 3 counter keep ms
local fence = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[2]) or '0') < fence then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if redis.call('TYPE', KEYS[1]).ok == 'hash' and redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'fence', ARGV[2])
  return 1
end
return 0
