-- Login: add a session, drop expired ones, and enforce the cap, atomically.
local sid = ARGV[8]            -- the new session's ID
local rec = ARGV[9]            -- its record
local limit = tonumber(ARGV[10]) -- the user's cap, -1 = unlimited
local reject = ARGV[11]        -- REJECT to refuse at the cap instead of evicting
local evictTail = ARGV[12]     -- tombstone tail for the sessions this login evicts
local loginEntry = ARGV[13]    -- the login's history entry
local sidExpiry = ARGV[14]     -- the new session's expiry, 13-digit ms
local REJECT = '1'
-- go-redis resends a command whose reply was lost (the server died just
-- after running it). A retry finds its own session and must not evict
-- again; its evictions were reported to nobody, but they did happen once.
-- The check rides on the HMGET that reads the index.
local l, mine = live(sid)
if mine then return {STATUS_OK} end
local n = #l
if limit >= 0 and n >= limit and reject == REJECT then
  local recs = records(l)
  done(l, false)
  local out = {STATUS_FULL}
  for i = n, 1, -1 do
    if recs[i] then
      out[#out + 1] = l[i][1]
      out[#out + 1] = recs[i]
    end
  end
  return out
end
if recording then event(loginEntry) end
local out = {STATUS_OK}
local keep = l
if limit >= 0 and n >= limit then
  -- Evict the oldest: only their records are read, for the digest that
  -- keeps each tombstone private to its token, and the device details.
  local first = n - limit + 2
  local victims = {}
  for i = 1, first - 1 do victims[i] = l[i] end
  local recs = records(victims)
  for i = 1, first - 1 do
    local r = recs[i]
    if r and string.byte(r, 1) == KIND_LIVE then
      finish(l[i][1], r, CODE_EVICTED, evictTail, sid)
      out[#out + 1] = l[i][1]
    end
  end
  keep = {}
  for i = first, n do keep[#keep + 1] = l[i] end
end
writes[#writes + 1] = sid
writes[#writes + 1] = rec
keep[#keep + 1] = {sid, tonumber(sidExpiry), sid .. sidExpiry}
done(keep, true)
return out
