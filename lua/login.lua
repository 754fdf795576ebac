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
