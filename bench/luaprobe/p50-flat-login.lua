-- The evicting login written flat, without the prelude's closures and
-- tables (no history, events or expiry events: measurement only), to see
-- what the shared prelude's structure costs.
local D, now, sid, limit = KEYS[1], tonumber(ARGV[1]), ARGV[8], tonumber(ARGV[10])
local sub = string.sub
local r = redis.call('HMGET', D, 'i', 't', sid)
if r[3] then return {1} end
local idx, tix = r[1] or '', r[2] or ''
local n = #idx / 29
local out = {1}
local maxLive = tonumber(ARGV[14])
local newI, newT = idx, tix
local writes = {sid, ARGV[9]}
if n >= limit then
  local ev = sub(idx, 1, 16)
  local rec = redis.call('HGET', D, ev)
  writes[3] = ev
  writes[4] = 'E' .. sub(rec, 2, 17) .. ARGV[12]
  newI = sub(idx, 30)
  local te = string.format('%013d', now + tonumber(ARGV[7]))
  newT = tix .. ev .. te
  out[2] = ev
end
for p = 1, #newI, 29 do
  local e = tonumber(sub(newI, p + 16, p + 28))
  if e > maxLive then maxLive = e end
end
writes[#writes + 1] = 'i'
writes[#writes + 1] = newI .. sid .. ARGV[14]
writes[#writes + 1] = 't'
writes[#writes + 1] = newT
redis.call('HSET', D, unpack(writes))
local m = math.max(maxLive, now + tonumber(ARGV[7]))
redis.call('PEXPIRE', D, m - now)
return out
