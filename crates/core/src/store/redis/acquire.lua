-- Take the lock when it is free and no older live waiter is queued for it.
-- KEYS: 1 lock hash, 2 fence counter, 3 waiter queue (zset, score = arrival µs),
--       4 waiter liveness (zset, score = deadline ms)
-- ARGV: 1 token, 2 owner, 3 ttl ms, 4 wait ms (0: the caller does not wait; > 0: it waits in
--       the FIFO queue; < 0: it waits without queueing, Redlock), 5 counter keep ms,
--       6 data (absent: none)
-- Reply: the fence (granted; a decimal string), or {owner or false, remaining ms or -3 (free,
-- but an older waiter is first in line)}.
--
-- The fence is the server's clock in µs, or one more than the counter when the counter is not
-- below the clock. The counter exists only while a later clock reading could be at or below the
-- last fence (a clock that did not advance or stepped back): release and extend write it then
-- (see docs/fences.md). Numbers stay below 2^53 (exact in Lua) unless a counter was set higher
-- by hand; such counters are only handled as strings (INCR).

-- The lock with our fields (dist-lock's id and owner, our fence), the lease as PEXPIRE.
local function grant(fence, waiting)
  if ARGV[6] then
    redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[2], 'fence', fence, 'data', ARGV[6])
  else
    redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[2], 'fence', fence)
  end
  if waiting then
    -- Others wait: the release must wake the next one.
    redis.call('HSET', KEYS[1], 'waiting', '1')
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return fence
end

-- A TIME reply as µs, a decimal string: built from its two strings, which is cheaper than
-- formatting a Lua number (a double) when it is passed to HSET.
local function clock(t)
  local us = t[2]
  return t[1] .. string.rep('0', 6 - #us) .. us
end

-- The common case: no lock, nobody waiting, no counter. One look, then the grant.
if redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[2]) == 0 then
  return grant(clock(redis.call('TIME')), false)
end

local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local now_ms = math.floor(now / 1000)
local keep = tonumber(ARGV[5])

-- Keep the counter (at `fence`) until the server clock has passed it by `keep`.
local function keep_counter(fence)
  local px = math.floor(tonumber(fence) / 1000) - now_ms + keep
  if px > 0 then
    redis.call('SET', KEYS[2], fence, 'PX', px)
  end
end

local wait_ms = tonumber(ARGV[4])
if wait_ms > 60000 or wait_ms < -60000 then
  wait_ms = wait_ms > 0 and 60000 or -60000 -- no queue outlives its waiters by more than this
end

-- Forget waiters that stopped polling (they crashed or gave up without saying so).
local function drop_stale()
  local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms)
  for i = 1, #stale do
    redis.call('ZREM', KEYS[3], stale[i])
    redis.call('ZREM', KEYS[4], stale[i])
  end
end

-- Join the queue (or refresh our place in it) when the caller is going to wait. A waiter that
-- does not queue (Redlock) is only listed as alive, so that the release wakes it.
local function enqueue()
  local ms = math.abs(wait_ms)
  if wait_ms > 0 then
    redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1])
  end
  redis.call('ZADD', KEYS[4], now_ms + ms, ARGV[1])
  -- Each key lives as long as its longest-polling waiter needs (PTTL -1: none yet).
  if redis.call('PTTL', KEYS[4]) < ms then
    redis.call('PEXPIRE', KEYS[4], ms)
  end
  if wait_ms > 0 and redis.call('PTTL', KEYS[3]) < ms then
    redis.call('PEXPIRE', KEYS[3], ms)
  end
end

-- A key of another type (e.g. another library's string lock) is held by someone else and is
-- never touched.
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'hash' then
  local h = redis.call('HMGET', KEYS[1], 'id', 'owner', 'fence', 'waiting')
  if h[1] == ARGV[1] then
    -- Ours already: an earlier attempt ran although its reply was lost (a timeout). Take it.
    if h[3] and tonumber(h[3]) >= now then
      keep_counter(h[3])
    end
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return h[3]
  end
  if wait_ms ~= 0 then
    drop_stale()
    enqueue()
    if h[3] and not h[4] then
      redis.call('HSET', KEYS[1], 'waiting', '1') -- ours (it has a fence): its release wakes
    end
  end
  return {h[2] or false, redis.call('PTTL', KEYS[1])}
elseif kind ~= 'none' then
  if wait_ms ~= 0 then
    drop_stale()
    enqueue()
  end
  return {false, redis.call('PTTL', KEYS[1])}
end

-- Free, but an older live waiter may be first in line.
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
if head and head ~= ARGV[1] then
  drop_stale()
  head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
end
if head and head ~= ARGV[1] then
  if wait_ms ~= 0 then
    enqueue()
  end
  return {false, -3}
end
if head then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end

-- The fence: the clock, unless the counter is not below it.
local fence = clock(t)
local last = redis.call('GET', KEYS[2])
if last and tonumber(last) >= now then
  redis.call('INCR', KEYS[2]) -- exact for any 64-bit counter
  fence = redis.call('GET', KEYS[2])
  keep_counter(fence)
elseif last then
  -- The clock has passed it: no longer needed (e.g. left by an older version, which kept its
  -- counters for 7 days). Without it the next grant takes the short path again.
  redis.call('DEL', KEYS[2])
end
return grant(fence, redis.call('EXISTS', KEYS[3], KEYS[4]) > 0)
