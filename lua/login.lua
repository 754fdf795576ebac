-- Login: add a session, drop expired ones, and enforce the cap, atomically.
-- Numbers come as + 0, not tonumber (see begin).
local sid = ARGV[9]               -- the new session's ID
local rec = ARGV[10]              -- its record
local limit = ARGV[11] + 0        -- the user's cap, -1 = unlimited
local reject = ARGV[12]           -- REJECT to refuse at the cap instead of evicting
local evictTail = ARGV[13]        -- tombstone tail for the sessions this login evicts
local loginEntry = ARGV[14]       -- the login's history entry
local sidExpiry = ARGV[15]        -- the new session's expiry, 13-digit ms
local replace = ARGV[16]          -- a session this sign-in replaces (its ID), or ''
local othersCode = ARGV[17]       -- end every other session with this code, or ''
local ceiling = ARGV[18] + 0      -- the most live sessions anyone may hold

local REJECT = '1'
-- go-redis resends a command whose reply was lost (the server died just
-- after running it). A retry finds its own session and must not evict
-- again; its evictions were reported to nobody, but they did happen once.
-- The check rides on the HMGET that reads the index, as does the record
-- of a session this sign-in replaces.
local mine, replaced
if replace ~= '' then mine, replaced = load(sid, replace) else mine = load(sid) end
if mine then return {STATUS_OK} end
indexPrefetch()
-- The sessions this sign-in ends on purpose, before the cap is counted:
-- one it replaces (the user chose it at the cap, or it is this device's
-- previous session), or every other ("this wasn't me", a password change).
local victims, codes = {}, {}
local n = idxN
if othersCode ~= '' then
  victims = indexOldest()
  for i = 1, #victims do codes[i] = othersCode end
elseif replace ~= '' and liveRecord(replaced) then
  victims[1], codes[1] = replace, CODE_REPLACED
end
local left = n - #victims
-- The ceiling holds whatever the cap, Unlimited included: a sign-in that
-- would pass it is refused, and changes nothing (expired sessions load()
-- found are still cleaned up).
if left >= ceiling and (limit < 0 or limit > ceiling) then
  done(true)
  return {STATUS_CEILING}
end
if limit >= 0 and left >= limit and reject == REJECT then
  -- Full even after what this sign-in would end: it ends nothing, and
  -- lists every live session (at most the cap) so the user can choose one
  -- to replace.
  local ids = indexOldest()
  local recs = records(ids)
  done(false)
  local out = {STATUS_FULL}
  for i = #ids, 1, -1 do
    if recs[i] then
      out[#out + 1] = ids[i]
      out[#out + 1] = recs[i]
    end
  end
  return out
end
if recording then event(loginEntry) end
-- Evict the oldest: only their records are read, for the digest that keeps
-- each tombstone private to its token, and the device details. They are
-- the front of the sign-in order, skipping one this sign-in replaces.
if limit >= 0 and left >= limit then
  local need = left - limit + 1
  local front = indexOldest(need + #victims)
  for i = 1, #front do
    if need > 0 and front[i] ~= victims[1] then
      victims[#victims + 1], codes[#codes + 1] = front[i], CODE_EVICTED
      need = need - 1
    end
  end
end
-- The reply lists every session this sign-in ended, each with its meta, so
-- the new device can be told which devices it signed out.
local out = {STATUS_OK}
local recs = records(victims)
for i = 1, #victims do
  local r = recs[i]
  if r and string.byte(r, 1) == KIND_LIVE then
    finish(victims[i], r, codes[i], evictTail, sid)
    out[#out + 1] = victims[i]
    out[#out + 1] = meta(r)
  else
    indexDrop(victims[i], '')
  end
end
writes[#writes + 1] = sid
writes[#writes + 1] = rec
indexAdd(sid, sidExpiry)
done(false)
return out
