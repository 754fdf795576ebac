-- prelude: lib.lua
-- Every read and every string the evicting login builds, nothing written.
local l, mine = live(ARGV[8])
local recs = records({l[1]})
finish(l[1][1], recs[1], 'E', ARGV[12], ARGV[8])
local keep = {}
for i = 2, #l do keep[#keep + 1] = l[i] end
keep[#keep + 1] = {ARGV[8], tonumber(ARGV[14]), ARGV[8] .. ARGV[14]}
local parts = {}
for k = 1, #keep do parts[k] = keep[k][3] end
local i = table.concat(parts)
local t = sub(tix, W + 1) .. table.concat(tombs)
return {1, l[1][1]}
