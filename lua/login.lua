-- Login: add a session, drop expired ones, and enforce the cap, atomically.
local sid = ARGV[9]            -- the new session's ID
local rec = ARGV[10]            -- its record
local limit = tonumber(ARGV[11]) -- the user's cap, -1 = unlimited
local reject = ARGV[12]        -- REJECT to refuse at the cap instead of evicting
local evictTail = ARGV[13]     -- tombstone tail for the sessions this login evicts
local loginEntry = ARGV[14]    -- the login's history entry
local sidExpiry = ARGV[15]     -- the new session's expiry, 13-digit ms
local replace = ARGV[16]       -- a session this sign-in replaces (its ID), or ''
local othersCode = ARGV[17]    -- end every other session with this code, or ''
local ceiling = tonumber(ARGV[18]) -- the most live sessions anyone may hold

local REJECT = '1'
-- go-redis resends a command whose reply was lost (the server died just
-- after running it). A retry finds its own session and must not evict
-- again; its evictions were reported to nobody, but they did happen once.
-- The check rides on the HMGET that reads the index.
local l, mine = live(sid)
if mine then return {STATUS_OK} end
-- The sessions this sign-in ends on purpose, before the cap is counted:
-- one it replaces (the user chose it at the cap, or it is this device's
-- previous session), or every other ("this wasn't me", a password change).
local all = l
local chosen, chosenCodes = {}, {}
if replace ~= '' or othersCode ~= '' then
  local rest = {}
  for i = 1, #l do
    local code
    if othersCode ~= '' then
      code = othersCode
    elseif l[i][1] == replace then
      code = CODE_REPLACED
    end
    if code then
      local k = #chosen + 1
      chosen[k], chosenCodes[k] = l[i], code
    else
      rest[#rest + 1] = l[i]
    end
  end
  l = rest
end
local n = #l
-- The ceiling holds whatever the cap, Unlimited included: a sign-in that
-- would pass it is refused, and changes nothing (expired sessions live()
-- found are still cleaned up).
if n >= ceiling and (limit < 0 or limit > ceiling) then
  done(all, false, true)
  return {STATUS_CEILING}
end
if limit >= 0 and n >= limit and reject == REJECT then
  -- Full even after what this sign-in would end: it ends nothing, and
  -- lists every live session so the user can choose one to replace.
  local recs = records(all)
  done(all, false)
  local out = {STATUS_FULL}
  for i = #all, 1, -1 do
    if recs[i] then
      out[#out + 1] = all[i][1]
      out[#out + 1] = recs[i]
    end
  end
  return out
end
if recording then event(loginEntry) end
-- The reply lists every session this sign-in ended, each with its meta, so
-- the new device can be told which devices it signed out.
local out = {STATUS_OK}
local keep = l
local victims, codes = {}, {}
for i = 1, #chosen do victims[i], codes[i] = chosen[i], chosenCodes[i] end
if limit >= 0 and n >= limit then
  -- Evict the oldest: only their records are read, for the digest that
  -- keeps each tombstone private to its token, and the device details.
  local first = n - limit + 2
  for i = 1, first - 1 do
    local k = #victims + 1
    victims[k], codes[k] = l[i], CODE_EVICTED
  end
  keep = {}
  for i = first, n do keep[#keep + 1] = l[i] end
end
local recs = records(victims)
for i = 1, #victims do
  local r = recs[i]
  if r and string.byte(r, 1) == KIND_LIVE then
    finish(victims[i][1], r, codes[i], evictTail, sid)
    out[#out + 1] = victims[i][1]
    out[#out + 1] = meta(r)
  end
end
writes[#writes + 1] = sid
writes[#writes + 1] = rec
keep[#keep + 1] = {sid, tonumber(sidExpiry), sid .. sidExpiry}
done(keep, true)
return out
