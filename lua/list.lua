-- List live sessions, newest first, healing the index on the way.
local l = live()
done(maxExpiry(l, 0))
local out = {1}
for i = #l, 1, -1 do
  out[#out + 1] = l[i][1]
  out[#out + 1] = l[i][2]
end
return out
