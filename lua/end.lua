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
-- Reply: {STATUS_OK, ended IDs...}, {STATUS_NONE} (no such live session or
-- not this token), or {STATUS_ENDED, tombstone} (this token's session had
-- already ended otherwise).
local byToken = mode == MODE_LOGOUT or mode == MODE_LOGOUT_OTHERS
local probe
if mode ~= MODE_LOGOUT_ALL then probe = sid end
local l, mine = live(probe)
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
-- Sort the live sessions into those that end (with their code) and those
-- that stay.
local keep, victims, codes = {}, {}, {}
local function stop(e, code)
  victims[#victims + 1] = e
  codes[#codes + 1] = code
end
if byToken then
  local found = false
  for i = 1, #l do
    if l[i][1] == sid then found = true end
  end
  if not found then -- it had just expired
    done(l, false, true)
    return {STATUS_NONE}
  end
  for i = 1, #l do
    local s = l[i][1]
    if s == sid then
      if mode == MODE_LOGOUT then stop(l[i], CODE_LOGOUT) else keep[#keep + 1] = l[i] end
    elseif mode == MODE_LOGOUT_OTHERS or otherCode ~= '' then
      stop(l[i], otherCode)
    else
      keep[#keep + 1] = l[i]
    end
  end
else
  for i = 1, #l do
    if mode == MODE_LOGOUT_ALL or l[i][1] == sid then stop(l[i], actorCode) else keep[#keep + 1] = l[i] end
  end
end
-- Read the records of the others; this session's came with the index.
local others = {}
for k = 1, #victims do
  if victims[k][1] ~= sid then others[#others + 1] = victims[k] end
end
local recs = records(others)
local j = 0
local tail, by = actorTail, sub(actorTail, TAIL_BY_FROM, TAIL_BY_TO)
if byToken then tail, by = now13 .. sid .. meta(mine), sid end
for k = 1, #victims do
  local s, r = victims[k][1], mine
  if s ~= sid then
    j = j + 1
    r = recs[j]
  end
  if r and string.byte(r, 1) == KIND_LIVE then
    finish(s, r, codes[k], tail, by)
    ended[#ended + 1] = s
  end
end
done(keep, false, true)
return ended
