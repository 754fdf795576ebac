-- Validate, when the engine's touch cache cannot vouch that the last-seen
-- time is fresh (see touch.go): one HGET, and a write only when the
-- last-seen time is older than the touch interval.
--
-- It takes neither the shared prelude (lib.lua) nor its arguments: the cost
-- of a script call is mostly its arguments and definitions, so it gets only
-- what it uses. An expired session is reported, not cleaned up: the next
-- login or listing of the user removes it and records the expiry (with the
-- time it really happened).
-- KEYS[1] the user's data HASH (as in lib.lua).
-- ARGV[1] now (13-digit ms), [2] idle timeout ms (0 = off), [3] touch
-- interval ms, [4] session ID, [5] secret digest.
--
-- Reply: the record itself (a bulk string) when the session is live, so the
-- hot path's reply is one string rather than an array; otherwise {0} (no
-- such session, or not this token), {2, tombstone}, or {3} (expired).
local D, sid, sub = KEYS[1], ARGV[4], string.sub
local r = redis.call('HGET', D, sid)
if not r or sub(r, 2, 17) ~= ARGV[5] then return {0} end
if string.byte(r, 1) ~= 76 then return {2, r} end
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
-- expiry(r) of lib.lua, inline: min(last seen + idle, absolute).
local abs = tonumber(sub(r, 44, 56))
local last = tonumber(sub(r, 31, 43))
if idle > 0 and last + idle < abs then
  if last + idle <= now then return {3} end
elseif abs <= now then
  return {3}
end
if now - last >= tonumber(ARGV[3]) then
  r = sub(r, 1, 30) .. ARGV[1] .. sub(r, 44)
  -- Sliding expiry never passes the absolute timeout.
  local e = abs
  if idle > 0 and now + idle < abs then e = now + idle end
  -- The live index ('i', see lib.lua) carries each session's expiry, so a
  -- login can tell live from expired without reading records: move ours.
  local idx = redis.call('HGET', D, 'i') or ''
  for p = 1, #idx - 28, 29 do
    if sub(idx, p, p + 15) == sid then
      idx = sub(idx, 1, p + 15) .. string.format('%013d', e) .. sub(idx, p + 29)
      redis.call('HSET', D, sid, r, 'i', idx)
      idx = nil
      break
    end
  end
  if idx then redis.call('HSET', D, sid, r) end
  redis.call('PEXPIRE', D, e - now, 'GT')
end
return r
