-- Validate: the hot path, run on every request. One HGET; a write only when
-- the last-seen time is older than the touch interval, or to clean up a
-- session found expired.
--
-- Unlike the other scripts it does not take the prelude (lib.lua): the
-- prelude's definitions cost more server time than this whole check, so
-- the few helpers the rare paths need are spelt out where they are used.
-- KEYS and ARGV[1..7] are as in lib.lua; ARGV[8] session ID, [9] secret
-- digest, [10] touch interval ms.
--
-- Reply: the record itself (a bulk string) when the session is live, so the
-- hot path's reply is one string rather than an array; otherwise {0} (no
-- such session, or not this token), {2, tombstone}, or {3} (it had just
-- expired and was cleaned up).
local D, sid = KEYS[1], ARGV[8]
local r = redis.call('HGET', D, sid)
if not r or string.sub(r, 2, 17) ~= ARGV[9] then return {0} end
if string.byte(r, 1) ~= 76 then return {2, r} end
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
-- expiry(r) of lib.lua, inline: min(last seen + idle, absolute).
local abs = tonumber(string.sub(r, 44, 56))
local last = tonumber(string.sub(r, 31, 43))
local e = abs
if idle > 0 and last + idle < abs then e = last + idle end
if e <= now then
  redis.call('HDEL', D, sid)
  redis.call('ZREM', KEYS[2], sid)
  -- event() and flush() of lib.lua, for this one entry.
  local histLimit, pubCmd = tonumber(ARGV[3]), ARGV[5]
  if histLimit ~= 0 or pubCmd ~= '' then
    local meta = string.sub(r, 61, 60 + tonumber(string.sub(r, 57, 60)))
    local ev = 'X' .. string.format('%013d', e) .. sid .. string.rep('\0', 16) .. meta
    if pubCmd ~= '' then redis.call(pubCmd, ARGV[6], ev) end
    if histLimit ~= 0 then
      redis.call('LPUSH', KEYS[4], ev)
      if histLimit > 0 then redis.call('LTRIM', KEYS[4], 0, histLimit - 1) end
      redis.call('PEXPIRE', KEYS[4], ARGV[4])
    end
  end
  return {3}
end
if now - last >= tonumber(ARGV[10]) then
  r = string.sub(r, 1, 30) .. ARGV[1] .. string.sub(r, 44)
  redis.call('HSET', D, sid, r)
  -- Sliding expiry never passes the absolute timeout.
  local ttl = abs - now
  if idle > 0 and idle < ttl then ttl = idle end
  redis.call('PEXPIRE', D, ttl, 'GT')
  redis.call('PEXPIRE', KEYS[2], ttl, 'GT')
end
return r
