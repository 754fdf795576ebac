-- Prelude shared by every sessioncap script (prepended at compile time).
-- KEYS: 1 data HASH, 2 live index ZSET, 3 tombstone ZSET, 4 history LIST;
-- all four share the user's hash tag.
-- ARGV 1..7 are common: now (13-digit ms), idle timeout ms (0 = off),
-- history limit (0 none, -1 all), history TTL ms, publish command ('' off),
-- channel, tombstone TTL ms. Script-specific arguments start at ARGV[8].
local D, I, T, H = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now13 = ARGV[1]
local now = tonumber(now13)
local idle = tonumber(ARGV[2])
local histLimit = tonumber(ARGV[3])
local pubCmd = ARGV[5]
local zeros = '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0'
local hist = {}

-- Record layout: see record.go. Offsets below are 1-based.
local function meta(r)
  return string.sub(r, 61, 60 + tonumber(string.sub(r, 57, 60)))
end

-- When a live record stops being valid, in ms.
local function expiry(r)
  local abs = tonumber(string.sub(r, 44, 56))
  if idle > 0 then
    local e = tonumber(string.sub(r, 31, 43)) + idle
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

-- Drop tombstones whose time is up.
local function pruneTombs()
  local old = redis.call('ZRANGEBYSCORE', T, '-inf', now)
  if #old == 0 then return end
  for i = 1, #old do
    local r = redis.call('HGET', D, old[i])
    if r and string.byte(r, 1) ~= 76 then redis.call('HDEL', D, old[i]) end
  end
  redis.call('ZREMRANGEBYSCORE', T, '-inf', now)
end

-- Live sessions, oldest first, as {sid, record, score, expiry}. Heals the
-- index on the way: members whose session expired or vanished leave it, and
-- an expiry is recorded with the time the session really expired.
local function live()
  local m = redis.call('ZRANGE', I, 0, -1, 'WITHSCORES')
  local out = {}
  for i = 1, #m, 2 do
    local sid = m[i]
    local r = redis.call('HGET', D, sid)
    if r and string.byte(r, 1) == 76 then
      local e = expiry(r)
      if e <= now then
        redis.call('HDEL', D, sid)
        redis.call('ZREM', I, sid)
        event('X' .. string.format('%013d', e) .. sid .. zeros .. meta(r))
      else
        out[#out + 1] = {sid, r, tonumber(m[i + 1]), e}
      end
    else
      redis.call('ZREM', I, sid)
    end
  end
  return out
end

-- End one live session: a tombstone takes its place, readable by the holder
-- of its token only, until the tombstone TTL passes.
local function finish(sid, r, code, tail, by)
  redis.call('HSET', D, sid, code .. string.sub(r, 2, 17) .. tail)
  redis.call('ZADD', T, now + tonumber(ARGV[7]), sid)
  redis.call('ZREM', I, sid)
  event(code .. now13 .. sid .. by .. meta(r))
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
-- Login: add a session, prune expired ones, and enforce the cap, atomically.
-- ARGV[8] new session ID, [9] its record, [10] limit (-1 = unlimited),
-- [11] '1' to reject at the cap instead of evicting, [12] tombstone tail for
-- sessions this login evicts, [13] the login's history entry.
local sid, rec, limit = ARGV[8], ARGV[9], tonumber(ARGV[10])
pruneTombs()
local l = live()
local n = #l
if limit >= 0 and n >= limit and ARGV[11] == '1' then
  setTTLs(maxExpiry(l, 0))
  flush()
  local out = {-1}
  for i = n, 1, -1 do
    out[#out + 1] = l[i][1]
    out[#out + 1] = l[i][2]
  end
  return out
end
event(ARGV[13])
local out = {1}
local first = 1
if limit >= 0 and n >= limit then
  first = n - limit + 2
  for i = 1, first - 1 do
    finish(l[i][1], l[i][2], 'E', ARGV[12], sid)
    out[#out + 1] = l[i][1]
  end
end
-- Strictly increasing scores keep sign-in order exact even for logins in
-- the same millisecond.
local score = now
if n > 0 and l[n][3] >= score then score = l[n][3] + 1 end
redis.call('HSET', D, sid, rec)
redis.call('ZADD', I, score, sid)
local keep = {}
for i = first, n do keep[#keep + 1] = l[i] end
setTTLs(maxExpiry(keep, expiry(rec)))
flush()
return out
