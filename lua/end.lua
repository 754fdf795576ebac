-- End sessions on purpose. ARGV[8] mode:
--   's' this session (token-checked); with ARGV[11] ~= '' every other too
--   'o' every session but this one (token-checked)
--   'i' one session by ID, no token
--   'a' every session of the user
-- ARGV[9] session ID, [10] secret digest, [11] code for the other sessions,
-- [12] tombstone tail for modes 'i' and 'a' (time, no causing session, meta
-- with the user ID), [13] code for modes 'i' and 'a'.
local mode, sid = ARGV[8], ARGV[9]
pruneTombs()
local l = live()
local ended = {1}
local keep = {}
if mode == 's' or mode == 'o' then
  local r = redis.call('HGET', D, sid)
  if not r or string.sub(r, 2, 17) ~= ARGV[10] then
    setTTLs(maxExpiry(l, 0))
    flush()
    return {0}
  end
  if string.byte(r, 1) ~= 76 then return {2, r} end
  local found = false
  for i = 1, #l do
    if l[i][1] == sid then found = true end
  end
  if not found then
    setTTLs(maxExpiry(l, 0))
    flush()
    return {0}
  end
  local tail = now13 .. sid .. meta(r)
  for i = 1, #l do
    local s = l[i][1]
    if s == sid then
      if mode == 's' then
        finish(s, r, 'O', tail, sid)
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
setTTLs(maxExpiry(keep, 0))
flush()
return ended
