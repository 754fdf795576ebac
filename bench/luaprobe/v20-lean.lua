-- prelude: _prelude-v10.lua
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
if recording then event(ARGV[13]) end
-- Strictly increasing scores keep sign-in order exact even for logins in
-- the same millisecond.
local score = now
if n > 0 and l[n][3] >= score then score = l[n][3] + 1 end
local out = {1}
local first = 1
local maxLive = expiry(rec)
if limit >= 0 and n >= limit then
  first = n - limit + 2
  local tombScore = now + tonumber(ARGV[7])
  if first == 2 then
    -- The usual case, one eviction: every write in one call per key.
    local s, r = l[1][1], l[1][2]
    redis.call('HSET', D, s, 'E' .. sub(r, 2, 17) .. ARGV[12], sid, rec)
    redis.call('ZADD', T, tombScore, s)
    redis.call('ZREM', I, s)
    out[2] = s
    if recording then event('E' .. now13 .. s .. sid .. meta(r)) end
  else
    for i = 1, first - 1 do
      finish(l[i][1], l[i][2], 'E', ARGV[12], sid)
      out[#out + 1] = l[i][1]
    end
    redis.call('HSET', D, sid, rec)
  end
else
  redis.call('HSET', D, sid, rec)
end
redis.call('ZADD', I, score, sid)
for i = first, n do
  if l[i][4] > maxLive then maxLive = l[i][4] end
end
setTTLs(maxLive)
flush()
return out
