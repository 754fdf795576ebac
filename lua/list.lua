-- List live sessions, newest first, healing the index on the way.
pruneTombs()
local l = live()
setTTLs(maxExpiry(l, 0))
flush()
local out = {1}
for i = #l, 1, -1 do
  out[#out + 1] = l[i][1]
  out[#out + 1] = l[i][2]
end
return out
