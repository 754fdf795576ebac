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
local ended = {1}
local keep = {}
local mine
if mode ~= 'a' then
  mine = redis.call('HGET', D, sid)
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
local l = live()
if mode == 's' or mode == 'o' then
  local found = false
  for i = 1, #l do
    if l[i][1] == sid then found = true end
  end
  if not found then -- it had just expired
    done(maxExpiry(l, 0))
    return {0}
  end
  local tail = now13 .. sid .. meta(mine)
  for i = 1, #l do
    local s = l[i][1]
    if s == sid then
      if mode == 's' then
        finish(s, mine, 'O', tail, sid)
        ended[#ended + 1] = s
      else
        keep[#keep + 1] = l[i]
      end
    elseif mode == 'o' or ARGV[11] ~= '' then
      finish(s, l[i][2], ARGV[11], tail, sid)
      ended[#ended + 1] = s
    else
      keep[#keep + 1] = l[i]
    end
  end
else
  for i = 1, #l do
    if mode == 'a' or l[i][1] == sid then
      finish(l[i][1], l[i][2], ARGV[13], ARGV[12], zeros)
      ended[#ended + 1] = l[i][1]
    else
      keep[#keep + 1] = l[i]
    end
  end
end
done(maxExpiry(keep, 0))
return ended
