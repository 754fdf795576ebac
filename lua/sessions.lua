-- Sessions: list the live sessions, newest first, healing the index on the
-- way. No arguments beyond the common ones.
local l = live()
local recs = records(l)
local keep = {}
local out = {STATUS_OK}
for i = #l, 1, -1 do
  if recs[i] and string.byte(recs[i], 1) == KIND_LIVE then
    out[#out + 1] = l[i][1]
    out[#out + 1] = recs[i]
  end
end
-- An index entry without its live record is dropped too.
for i = 1, #l do
  if recs[i] and string.byte(recs[i], 1) == KIND_LIVE then keep[#keep + 1] = l[i] end
end
done(keep, false, true)
return out
