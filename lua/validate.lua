-- Validate, when the engine's touch cache cannot vouch that the last-seen
-- time is fresh (see touch.go): one HGET, and a write only when the
-- last-seen time is older than the touch interval.
--
-- It takes protocol.lua, not the shared prelude (lib.lua) nor its
-- arguments: the cost of a script call is mostly its arguments and
-- definitions (each function a script defines costs about 0.25 µs per
-- call), so it gets only what it uses. The index (index.lua) comes wrapped
-- in a function, indexModule, so its functions are made only on the
-- refresh path. An expired session is
-- reported, not cleaned up: the next login or listing of the user removes
-- it and records the expiry (with the time it really happened).
--
-- Reply: the record itself (a bulk string) when the session is live, so the
-- hot path's reply is one string rather than an array; otherwise
-- {STATUS_NONE}, {STATUS_ENDED, tombstone} or {STATUS_EXPIRED}.
local now13 = ARGV[1]  -- now, 13-digit ms
local idleMS = ARGV[2] -- idle timeout ms, 0 = off
local touchMS = ARGV[3] -- touch interval ms
local sid = ARGV[4]    -- the session's ID
local digest = ARGV[5] -- the token's secret digest
local D = KEYS[1]      -- the user's data HASH
local sub = string.sub
local r = redis.call('HGET', D, sid)
if not r or sub(r, DIGEST_FROM, DIGEST_TO) ~= digest then return {STATUS_NONE} end
if string.byte(r, 1) ~= KIND_LIVE then return {STATUS_ENDED, r} end
local now, idle = tonumber(now13), tonumber(idleMS)
-- expiry(r) of lib.lua, inline: min(last seen + the record's idle timeout,
-- absolute). The record's, not today's: a config change revives nothing.
local abs = tonumber(sub(r, ABS_FROM, ABS_TO))
local last = tonumber(sub(r, LAST_FROM, LAST_TO))
local was = tonumber(sub(r, IDLE_FROM, IDLE_TO))
if was > 0 and last + was < abs then
  if last + was <= now then return {STATUS_EXPIRED} end
elseif abs <= now then
  return {STATUS_EXPIRED}
end
if now - last >= tonumber(touchMS) then
  -- A refresh writes today's idle timeout: from here on it applies.
  local fresh = sub(r, 1, CREATED_TO) .. now13 .. sub(r, ABS_FROM, ABS_TO) ..
    string.format(TS_FORMAT, idle) .. sub(r, METALEN_FROM)
  -- Sliding expiry never passes the absolute timeout.
  local e = abs
  if idle > 0 and now + idle < abs then e = now + idle end
  -- The live index (index.lua) keeps sessions in expiry order, so a
  -- login finds the expired ones without reading records: move ours. Its
  -- old place is the expiry the record had.
  local old = abs
  if was > 0 and last + was < abs then old = last + was end
  local j = redis.call('HMGET', D, 'j', 'k')
  local w
  local I = indexModule()
  if I.load(j[1] or nil, j[2] or nil) and I.move(sid, string.format(TS_FORMAT, old), string.format(TS_FORMAT, e)) then
    I.save()
    w = redis.pcall('HSET', D, sid, fresh, unpack(I.writes))
  end
  if not w then w = redis.pcall('HSET', D, sid, fresh) end
  if type(w) == 'table' and w.err then
    -- Out of memory (noeviction): the refresh is not written, and the
    -- session is still answered as valid, with its stored last-seen time,
    -- so the engine does not believe a refresh happened. Any other error
    -- is the call's.
    if string.find(w.err, 'OOM', 1, true) == 1 then return r end
    return error(w)
  end
  redis.call('PEXPIRE', D, e - now, 'GT')
  if I.dead[1] then redis.call('HDEL', D, unpack(I.dead)) end
  return fresh
end
return r
