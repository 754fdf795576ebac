-- prelude: lib.lua
-- The HMGET of both index fields and the retry probe, parsed.
local l, mine = live(ARGV[8])
return {1, l[1][1]}
