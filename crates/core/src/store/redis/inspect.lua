-- Read the lock without changing it. KEYS: 1 lock hash.
-- Returns owner, fence, data, remaining ms (or an empty array when there is no lock).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  return {'', '0', false, redis.call('PTTL', KEYS[1])} -- another library's lock
end
local f = redis.call('HMGET', KEYS[1], 'owner', 'fence', 'data')
return {f[1] or '', f[2] or '0', f[3] or false, redis.call('PTTL', KEYS[1])}
