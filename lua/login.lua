-- Login: add a session, drop expired ones, and enforce the cap, atomically.
-- ARGV[8] new session ID, [9] its record, [10] limit (-1 = unlimited),
-- [11] '1' to reject at the cap instead of evicting, [12] tombstone tail for
-- sessions this login evicts, [13] the login's history entry, [14] the new
-- session's expiry (13-digit ms).
local sid, rec, limit = ARGV[8], ARGV[9], tonumber(ARGV[10])
-- go-redis resends a command whose reply was lost (the server died just
-- after running it). A retry finds its own session and must not evict
-- again; its evictions were reported to nobody, but they did happen once.
-- The check rides on the HMGET that reads the index.
local l, mine = live(sid)
if mine then return {1} end
local n = #l
if limit >= 0 and n >= limit and ARGV[11] == '1' then
  local recs = records(l)
  done(l, false)
  local out = {-1}
  for i = n, 1, -1 do
    if recs[i] then
      out[#out + 1] = l[i][1]
      out[#out + 1] = recs[i]
    end
  end
  return out
end
if recording then event(ARGV[13]) end
local out = {1}
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
    if r and string.byte(r, 1) == 76 then
      finish(l[i][1], r, 'E', ARGV[12], sid)
      out[#out + 1] = l[i][1]
    end
  end
  keep = {}
  for i = first, n do keep[#keep + 1] = l[i] end
end
writes[#writes + 1] = sid
writes[#writes + 1] = rec
keep[#keep + 1] = {sid, tonumber(ARGV[14]), sid .. ARGV[14]}
done(keep, true)
return out
