-- Validate: the hot path, run on every request. One HGET; a write only when
-- the last-seen time is older than the touch interval.
--
-- It takes neither the shared prelude (lib.lua) nor its arguments: on this
-- path the cost of a script call is mostly its arguments and definitions,
-- so it gets only what it uses. An expired session is reported, not
-- cleaned up: the next login or listing of the user removes it and records
-- the expiry (with the time it really happened).
-- KEYS[1] data HASH, KEYS[2] live index ZSET (the user's, as in lib.lua).
-- ARGV[1] now (13-digit ms), [2] idle timeout ms (0 = off), [3] touch
-- interval ms, [4] session ID, [5] secret digest.
--
-- Reply: the record itself (a bulk string) when the session is live, so the
-- hot path's reply is one string rather than an array; otherwise {0} (no
-- such session, or not this token), {2, tombstone}, or {3} (expired).
local D, sid = KEYS[1], ARGV[4]
local r = redis.call('HGET', D, sid)
if not r or string.sub(r, 2, 17) ~= ARGV[5] then return {0} end
if string.byte(r, 1) ~= 76 then return {2, r} end
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
-- expiry(r) of lib.lua, inline: min(last seen + idle, absolute).
local abs = tonumber(string.sub(r, 44, 56))
local last = tonumber(string.sub(r, 31, 43))
if idle > 0 and last + idle < abs then
  if last + idle <= now then return {3} end
elseif abs <= now then
  return {3}
end
if now - last >= tonumber(ARGV[3]) then
  r = string.sub(r, 1, 30) .. ARGV[1] .. string.sub(r, 44)
  redis.call('HSET', D, sid, r)
  -- Sliding expiry never passes the absolute timeout.
  local ttl = abs - now
  if idle > 0 and idle < ttl then ttl = idle end
  redis.call('PEXPIRE', D, ttl, 'GT')
  redis.call('PEXPIRE', KEYS[2], ttl, 'GT')
end
return r
