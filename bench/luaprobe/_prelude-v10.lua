-- The prelude (lua/lib.lua) as it stood when variants v10 to v98 were
-- measured, kept frozen so their figures stay reproducible. A variant that
-- starts with "-- prelude: _prelude-v10.lua" is run with this prepended.
-- Prelude shared by every sessioncap script (prepended at compile time).
-- KEYS: 1 data HASH, 2 live index ZSET, 3 tombstone ZSET, 4 history LIST;
-- all four share the user's hash tag.
-- ARGV 1..7 are common: now (13-digit ms), idle timeout ms (0 = off),
-- history limit (0 none, -1 all), history TTL ms, publish command ('' off),
-- channel, tombstone TTL ms. Script-specific arguments start at ARGV[8].
--
-- The prelude runs on every call, so it does as little as it can: each
-- redis.call costs about a microsecond and each Lua string built or number
-- parsed a tenth of one (bench/NOTES.md has the measurements).
local D, I, T, H = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now13 = ARGV[1]
local now = tonumber(now13)
local idle = tonumber(ARGV[2])
local histLimit = tonumber(ARGV[3])
local pubCmd = ARGV[5]
-- Whether endings are recorded at all: when not, no event string is built.
local recording = histLimit ~= 0 or pubCmd ~= ''
local zeros = '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0'
local hist = {}
local sub = string.sub

-- Record layout: see record.go. Offsets below are 1-based.
local function meta(r)
  return sub(r, 61, 60 + tonumber(sub(r, 57, 60)))
end

-- When a live record stops being valid, in ms.
local function expiry(r)
  local abs = tonumber(sub(r, 44, 56))
  if idle > 0 then
    local e = tonumber(sub(r, 31, 43)) + idle
    if e < abs then return e end
  end
  return abs
end

local function event(e)
  if histLimit ~= 0 then hist[#hist + 1] = e end
  if pubCmd ~= '' then redis.call(pubCmd, ARGV[6], e) end
end

local function flush()
  local n = #hist
  if n == 0 then return end
  for i = 1, n, 200 do
    redis.call('LPUSH', H, unpack(hist, i, math.min(i + 199, n)))
  end
  if histLimit > 0 then redis.call('LTRIM', H, 0, histLimit - 1) end
  redis.call('PEXPIRE', H, ARGV[4])
end

-- Run cmd on key with the items of list as trailing arguments, 200 at a
-- time (unpack has a stack limit), appending the replies to out if given.
local function batch(cmd, key, list, out)
  local n = #list
  for i = 1, n, 200 do
    local r = redis.call(cmd, key, unpack(list, i, math.min(i + 199, n)))
    if out then
      for j = 1, #r do out[#out + 1] = r[j] end
    end
  end
end

-- Drop tombstones whose time is up.
local function pruneTombs()
  local old = redis.call('ZRANGEBYSCORE', T, '-inf', now)
  if #old == 0 then return end
  local recs = {}
  batch('HMGET', D, old, recs)
  local del = {}
  for i = 1, #old do
    local r = recs[i]
    if r and string.byte(r, 1) ~= 76 then del[#del + 1] = old[i] end
  end
  if #del > 0 then batch('HDEL', D, del) end
  redis.call('ZREMRANGEBYSCORE', T, '-inf', now)
end

-- Live sessions, oldest first, as {sid, record, score, expiry}. Heals the
-- index on the way: members whose session expired or vanished leave it, and
-- an expiry is recorded with the time the session really expired. One
-- HMGET reads every record.
local function live()
  local m = redis.call('ZRANGE', I, 0, -1, 'WITHSCORES')
  local out = {}
  if #m == 0 then return out end
  local ids = {}
  for i = 1, #m, 2 do ids[#ids + 1] = m[i] end
  local recs = {}
  batch('HMGET', D, ids, recs)
  local gone, dead = {}, {}
  for k = 1, #ids do
    local sid, r = ids[k], recs[k]
    if r and string.byte(r, 1) == 76 then
      local e = expiry(r)
      if e <= now then
        dead[#dead + 1] = sid
        gone[#gone + 1] = sid
        if recording then
          event('X' .. string.format('%013d', e) .. sid .. zeros .. meta(r))
        end
      else
        out[#out + 1] = {sid, r, tonumber(m[2 * k]), e}
      end
    else
      gone[#gone + 1] = sid
    end
  end
  if #dead > 0 then batch('HDEL', D, dead) end
  if #gone > 0 then batch('ZREM', I, gone) end
  return out
end

-- End one live session: a tombstone takes its place, readable by the holder
-- of its token only, until the tombstone TTL passes.
local function finish(sid, r, code, tail, by)
  redis.call('HSET', D, sid, code .. sub(r, 2, 17) .. tail)
  redis.call('ZADD', T, now + tonumber(ARGV[7]), sid)
  redis.call('ZREM', I, sid)
  if recording then event(code .. now13 .. sid .. by .. meta(r)) end
end

-- Every key lives exactly as long as what it holds: the index until its
-- last live session would expire, tombstones until the last one's time, the
-- data hash until the later of the two. A TTL of zero or less deletes.
local function setTTLs(maxLive)
  local maxTomb = 0
  local t = redis.call('ZRANGE', T, -1, -1, 'WITHSCORES')
  if #t > 0 then maxTomb = tonumber(t[2]) end
  if maxLive > now then redis.call('PEXPIRE', I, maxLive - now) else redis.call('DEL', I) end
  if maxTomb > now then redis.call('PEXPIRE', T, maxTomb - now) else redis.call('DEL', T) end
  local m = math.max(maxLive, maxTomb)
  if m > now then redis.call('PEXPIRE', D, m - now) else redis.call('DEL', D) end
end

local function maxExpiry(l, from)
  local m = from
  for i = 1, #l do
    if l[i][4] > m then m = l[i][4] end
  end
  return m
end
