-- prelude: _prelude-v10.lua
local m = redis.call('ZRANGE', I, 0, -1, 'WITHSCORES') return {1, m[1]}
