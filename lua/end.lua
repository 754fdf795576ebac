-- End sessions on purpose. ARGV[8] mode:
--   's' this session (token-checked); with ARGV[11] ~= '' every other too
--   'o' every session but this one (token-checked)
--   'i' one session by ID, no token
--   'a' every session of the user
-- ARGV[9] session ID, [10] secret digest, [11] code for the other sessions,
-- [12] tombstone tail for modes 'i' and 'a' (time, no causing session, meta
-- with the user ID), [13] code for modes 'i' and 'a'.
-- Reply: {1, ended IDs...}, {0} (no such live session or not this token),
-- or {2, tombstone} (this token's session had already ended otherwise).
local mode, sid = ARGV[8], ARGV[9]
local probe
if mode ~= 'a' then probe = sid end
local l, mine = live(probe)
local ended = {1}
if mode ~= 'a' then
  if mine and string.byte(mine, 1) ~= 76 then
    -- Already ended. A retried Logout or Revoke finds the tombstone it
    -- wrote itself, and succeeds again without doing anything.
    local code = string.byte(mine, 1)
    if mode == 's' and code == 79 and sub(mine, 2, 17) == ARGV[10] then return ended end
    if mode == 'i' and code == 86 then
      ended[2] = sid
      return ended
    end
    if mode == 'i' then return {0} end
  end
  if mode ~= 'i' then
    if not mine or sub(mine, 2, 17) ~= ARGV[10] then return {0} end
    if string.byte(mine, 1) ~= 76 then return {2, mine} end
  end
end
-- Sort the live sessions into those that end (with their code) and those
-- that stay.
local keep, victims, codes = {}, {}, {}
local function stop(e, code)
  victims[#victims + 1] = e
  codes[#codes + 1] = code
end
if mode == 's' or mode == 'o' then
  local found = false
  for i = 1, #l do
    if l[i][1] == sid then found = true end
  end
  if not found then -- it had just expired
    done(l, false)
    return {0}
  end
  for i = 1, #l do
    local s = l[i][1]
    if s == sid then
      if mode == 's' then stop(l[i], 'O') else keep[#keep + 1] = l[i] end
    elseif mode == 'o' or ARGV[11] ~= '' then
      stop(l[i], ARGV[11])
    else
      keep[#keep + 1] = l[i]
    end
  end
else
  for i = 1, #l do
    if mode == 'a' or l[i][1] == sid then stop(l[i], ARGV[13]) else keep[#keep + 1] = l[i] end
  end
end
-- Read the records of the others; this session's came with the index.
local others = {}
for k = 1, #victims do
  if victims[k][1] ~= sid then others[#others + 1] = victims[k] end
end
local recs = records(others)
local j = 0
local tail, by = ARGV[12], zeros
if mode == 's' or mode == 'o' then tail, by = now13 .. sid .. meta(mine), sid end
for k = 1, #victims do
  local s, r = victims[k][1], mine
  if s ~= sid then
    j = j + 1
    r = recs[j]
  end
  if r and string.byte(r, 1) == 76 then
    finish(s, r, codes[k], tail, by)
    ended[#ended + 1] = s
  end
end
done(keep, false)
return ended
