-- prelude: lib.lua locals
-- The prelude's locals and tables, none of its functions.
local writes, dead, tix, tombs, tombEntry, liveRead = {}, {}, '', {}, nil, 0
return {1, '0123456789abcdef'}
