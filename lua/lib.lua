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

-- Removals wait in these lists until commit(). On a slot that is MIGRATING
-- (resharding), Redis refuses any access to a key of that slot that does
-- not exist, and aborts the script at that command, half done. A key a
-- script empties (the last ZREM, the last HDEL) stops existing, so every
-- script writes first, removes last, and never touches a key again after a
-- removal may have emptied it. Redis deletes an emptied key by itself, so
-- there is never a DEL either.
local gone, dead = {}, {} -- index members to ZREM, data fields to HDEL
-- Set when this call wrote a tombstone: with one clock and one tombstone
-- TTL, the newest tombstone then expires at now + TTL, so setTTLs need not
-- read it back. (After a clock step back or a shorter TTL, older tombstones
-- could outlive that; they would then vanish early, which only turns their
-- eviction message into "expired".)
local tombAdded = false

-- Live sessions, oldest first, as {sid, record, score, expiry}. Read-only:
-- members whose session expired or vanished are queued for removal (the
-- index heals at commit()), and an expiry is recorded with the time the
-- session really expired. One HMGET reads every record.
--
-- probe, if given, is one more field of D to read in the same HMGET; its
-- value is the second result (false when absent, or when D is empty).
local function live(probe)
  local m = redis.call('ZRANGE', I, 0, -1, 'WITHSCORES')
  local out = {}
  if #m == 0 then
    if probe then return out, redis.call('HGET', D, probe) end
    return out, false
  end
  local ids = {}
  for i = 1, #m, 2 do ids[#ids + 1] = m[i] end
  if probe then ids[#ids + 1] = probe end
  local recs = {}
  batch('HMGET', D, ids, recs)
  local probed = false
  if probe then
    probed = recs[#ids]
    ids[#ids] = nil
  end
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
  return out, probed
end

-- End one live session: a tombstone takes its place, readable by the holder
-- of its token only, until the tombstone TTL passes. Its index entry goes
-- at commit().
local function finish(sid, r, code, tail, by)
  redis.call('HSET', D, sid, code .. sub(r, 2, 17) .. tail)
  redis.call('ZADD', T, now + tonumber(ARGV[7]), sid)
  tombAdded = true
  gone[#gone + 1] = sid
  if recording then event(code .. now13 .. sid .. by .. meta(r)) end
end

-- Apply the queued removals: after every write, see above.
local function commit()
  if #gone > 0 then batch('ZREM', I, gone) end
  if #dead > 0 then batch('HDEL', D, dead) end
end

-- Every key lives exactly as long as what it holds: the index until its
-- last live session would expire, tombstones until the last one's time, the
-- data hash until the later of the two. Called after commit(), and only
-- sets a TTL on a key that still holds something; an emptied key is gone.
local function setTTLs(maxLive)
  local maxTomb = 0
  if tombAdded then
    maxTomb = now + tonumber(ARGV[7])
  else
    local t = redis.call('ZRANGE', T, -1, -1, 'WITHSCORES')
    if #t > 0 then maxTomb = tonumber(t[2]) end
  end
  if maxLive > now then redis.call('PEXPIRE', I, maxLive - now) end
  if maxTomb > now then redis.call('PEXPIRE', T, maxTomb - now) end
  local m = math.max(maxLive, maxTomb)
  if m > now then redis.call('PEXPIRE', D, m - now) end
end

-- Drop tombstones whose time is up: the last step that touches D and T,
-- since it may empty both.
local function pruneTombs()
  local old = redis.call('ZRANGEBYSCORE', T, '-inf', now)
  if #old == 0 then return end
  batch('HDEL', D, old)
  redis.call('ZREMRANGEBYSCORE', T, '-inf', now)
end

-- The end of every script that changed sessions.
local function done(maxLive)
  commit()
  setTTLs(maxLive)
  pruneTombs()
  flush()
end

local function maxExpiry(l, from)
  local m = from
  for i = 1, #l do
    if l[i][4] > m then m = l[i][4] end
  end
  return m
end
