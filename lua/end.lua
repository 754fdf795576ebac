-- End sessions on purpose: the four endings share their checks and their
-- bookkeeping, and differ in which sessions end and what proves the right.
local MODE_LOGOUT = 's'        -- this session (token-checked); with otherCode every other too
local MODE_LOGOUT_OTHERS = 'o' -- every session but this one (token-checked)
local MODE_REVOKE = 'i'        -- one session by ID, no token
local MODE_LOGOUT_ALL = 'a'    -- every session of the user, no token
local mode = ARGV[9]      -- one of the modes above
local sid = ARGV[10]       -- this session, or the one to revoke
local digest = ARGV[11]   -- this token's secret digest (token-checked modes)
local otherCode = ARGV[12] -- code for the other sessions ('' ends none)
local actorTail = ARGV[13] -- tombstone tail for MODE_REVOKE and MODE_LOGOUT_ALL:
                           -- time, the acting session's ID (or zeros), then who
                           -- acted: its meta, or the user ID's, and an admin name
local actorCode = ARGV[14] -- code for MODE_REVOKE and MODE_LOGOUT_ALL (the reason)
local chunk = tonumber(ARGV[15]) -- MODE_LOGOUT_ALL: sessions ended per call at most
local callID = ARGV[16]   -- MODE_LOGOUT_ALL: the same for every chunk of one LogoutAll
-- Reply: {STATUS_OK, ended IDs...} (MODE_LOGOUT_ALL: {STATUS_OK, total,
-- more, ended IDs...}), {STATUS_NONE} (no such live session or not this
-- token), or {STATUS_ENDED, tombstone} (this token's session had already
-- ended otherwise).
local byToken = mode == MODE_LOGOUT or mode == MODE_LOGOUT_OTHERS
local probe
if mode ~= MODE_LOGOUT_ALL then probe = sid end
local mine
if probe then mine = load(probe) else load() end
local ended = {STATUS_OK}
if mode ~= MODE_LOGOUT_ALL then
  if mine and string.byte(mine, 1) ~= KIND_LIVE then
    -- Already ended. A retried Logout or Revoke finds the tombstone it
    -- wrote itself, and succeeds again without doing anything.
    local code = sub(mine, 1, 1)
    if mode == MODE_LOGOUT and code == CODE_LOGOUT and sub(mine, DIGEST_FROM, DIGEST_TO) == digest then
      return ended
    end
    if mode == MODE_REVOKE and code == actorCode then
      ended[2] = sid
      return ended
    end
    if mode == MODE_REVOKE then return {STATUS_NONE} end
  end
  if byToken then
    if not mine or sub(mine, DIGEST_FROM, DIGEST_TO) ~= digest then return {STATUS_NONE} end
    if string.byte(mine, 1) ~= KIND_LIVE then return {STATUS_ENDED, mine} end
  end
end
-- Which sessions end, each with its code. The others' records are read;
-- this session's came with the index.
local victims, codes = {}, {}
local function stop(s, code)
  victims[#victims + 1] = s
  codes[#codes + 1] = code
end
-- This session ends if its record is live (an index damaged from outside
-- must not make a session unendable).
local alive = probe and liveRecord(mine)
if mode == MODE_LOGOUT_ALL then
  -- A user with very many sessions is ended in chunks of at most chunk
  -- sessions, oldest first, one call each (see LogoutAll); the count so
  -- far rides in field 'c' under the call's ID, so a chunk go-redis
  -- retries after a lost reply still reports the true total.
  local ids = indexOldest(chunk)
  for i = 1, #ids do stop(ids[i], actorCode) end
elseif mode == MODE_REVOKE then
  if alive then stop(sid, actorCode) end
else
  if not alive then -- it had just expired
    done(true)
    return {STATUS_NONE}
  end
  if mode == MODE_LOGOUT then stop(sid, CODE_LOGOUT) end
  if mode == MODE_LOGOUT_OTHERS or otherCode ~= '' then
    local ids = indexOldest()
    for i = 1, #ids do
      if ids[i] ~= sid then stop(ids[i], otherCode) end
    end
  end
end
local others = {}
for k = 1, #victims do
  if victims[k] ~= sid then others[#others + 1] = victims[k] end
end
local recs = records(others)
local j = 0
local tail, by = actorTail, sub(actorTail, TAIL_BY_FROM, TAIL_BY_TO)
if byToken then tail, by = now13 .. sid .. meta(mine), sid end
for k = 1, #victims do
  local s, r = victims[k], mine
  if s ~= sid then
    j = j + 1
    r = recs[j]
  end
  if r and string.byte(r, 1) == KIND_LIVE then
    finish(s, r, codes[k], tail, by)
    ended[#ended + 1] = s
  else
    indexDrop(s, '')
  end
end
if mode == MODE_LOGOUT_ALL then
  local c = cField or ''
  local total = #ended - 1
  if sub(c, 1, #callID) == callID then total = total + (tonumber(sub(c, #callID + 1)) or 0) end
  -- {STATUS_OK, total so far, more to do (1/0), ended IDs...}
  table.insert(ended, 2, total)
  table.insert(ended, 3, idxN > 0 and 1 or 0)
  if #ended > 3 or #c > 0 then
    writes[#writes + 1] = 'c'
    writes[#writes + 1] = callID .. total
  end
end
done(true)
return ended
