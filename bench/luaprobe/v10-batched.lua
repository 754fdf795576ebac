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
event(ARGV[13])
local out = {1}
local first = 1
-- The writes of the evictions and of the new session go out together: one
-- HSET for every tombstone and the new record, one ZADD, one ZREM.
local hset = {}
if limit >= 0 and n >= limit then
  first = n - limit + 2
  local tombScore = now + tonumber(ARGV[7])
  local zt, zi = {}, {}
  for i = 1, first - 1 do
    local s, r = l[i][1], l[i][2]
    hset[#hset + 1] = s
    hset[#hset + 1] = 'E' .. sub(r, 2, 17) .. ARGV[12]
    zt[#zt + 1] = tombScore
    zt[#zt + 1] = s
    zi[#zi + 1] = s
    out[#out + 1] = s
    if recording then event('E' .. now13 .. s .. sid .. meta(r)) end
  end
  batch('ZADD', T, zt)
  batch('ZREM', I, zi)
end
-- Strictly increasing scores keep sign-in order exact even for logins in
-- the same millisecond.
local score = now
if n > 0 and l[n][3] >= score then score = l[n][3] + 1 end
hset[#hset + 1] = sid
hset[#hset + 1] = rec
batch('HSET', D, hset)
redis.call('ZADD', I, score, sid)
local keep = {}
for i = first, n do keep[#keep + 1] = l[i] end
setTTLs(maxExpiry(keep, expiry(rec)))
flush()
return out
