-- Take the lock when it is free and no older live waiter is queued for it.
-- KEYS: 1 lock hash, 2 fence counter, 3 waiter queue (zset, score = arrival), 4 waiter liveness
--       (zset, score = deadline ms)
-- ARGV: 1 token, 2 owner, 3 ttl ms, 4 '1' when data is given, 5 data, 6 queue ms (0: do not
--       queue), 7 fence counter keep ms
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local queue_ms = tonumber(ARGV[6])

-- Forget waiters that stopped polling (they crashed or gave up without saying so).
local function drop_stale()
  local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
  for i = 1, #stale do
    redis.call('ZREM', KEYS[3], stale[i])
    redis.call('ZREM', KEYS[4], stale[i])
  end
end

-- Join the queue (or refresh our place in it) when the caller is going to wait.
local function enqueue()
  if queue_ms > 0 then
    redis.call('ZADD', KEYS[3], 'NX', now_us, ARGV[1])
    redis.call('ZADD', KEYS[4], now + queue_ms, ARGV[1])
    if redis.call('PTTL', KEYS[3]) < queue_ms then
      redis.call('PEXPIRE', KEYS[3], queue_ms)
      redis.call('PEXPIRE', KEYS[4], queue_ms)
    end
  end
end

-- A key of another type (e.g. another library's string lock) is held by someone else.
local hash = redis.call('TYPE', KEYS[1]).ok == 'hash'

-- Ours already: an earlier attempt ran although its reply was lost (a timeout). Take it.
if hash and redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, redis.call('HGET', KEYS[1], 'fence')}
end

-- Held: report the owner and the time left.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if queue_ms > 0 then
    drop_stale()
    enqueue()
  end
  return {0, hash and redis.call('HGET', KEYS[1], 'owner'), redis.call('PTTL', KEYS[1])}
end

-- Free, but an older live waiter is first in line.
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
if head and head ~= ARGV[1] then
  drop_stale()
  head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
end
if head and head ~= ARGV[1] then
  enqueue()
  return {0, false, -3}
end
if head then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end

-- Fence: one more than the last, and never below the server clock in microseconds, so it
-- keeps increasing when the counter is gone (expired, or a restart without persistence).
local fence = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if fence < now_us then
  fence = now_us
end
redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', ARGV[7])

-- The lock itself: dist-lock's fields (id, owner) plus ours, with the lease as PEXPIRE.
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[2], 'fence', string.format('%.0f', fence))
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'data', ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, string.format('%.0f', fence)}
