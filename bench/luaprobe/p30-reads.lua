-- prelude: lib.lua
-- Every read of the evicting login, and nothing written.
local l, mine = live(ARGV[8])
local recs = records({l[1]})
return {1, l[1][1]}
