-- Validate: the hot path. One HGET; a write only when the last-seen time is
-- older than the touch interval, or to clean up a session found expired.
-- ARGV[8] session ID, [9] secret digest, [10] touch interval ms.
local r = redis.call('HGET', D, ARGV[8])
if not r or string.sub(r, 2, 17) ~= ARGV[9] then return {0} end
if string.byte(r, 1) ~= 76 then return {2, r} end
local e = expiry(r)
if e <= now then
  local sid = ARGV[8]
  redis.call('HDEL', D, sid)
  redis.call('ZREM', I, sid)
  event('X' .. string.format('%013d', e) .. sid .. zeros .. meta(r))
  flush()
  return {3}
end
if now - tonumber(string.sub(r, 31, 43)) >= tonumber(ARGV[10]) then
  r = string.sub(r, 1, 30) .. now13 .. string.sub(r, 44)
  redis.call('HSET', D, ARGV[8], r)
  -- Sliding expiry never passes the absolute timeout: expiry() caps it.
  local ttl = expiry(r) - now
  redis.call('PEXPIRE', D, ttl, 'GT')
  redis.call('PEXPIRE', I, ttl, 'GT')
end
return {1, r}
