-- prelude: _prelude-v10.lua
local m = redis.call('ZRANGE', I, 0, -1, 'WITHSCORES') local r = redis.call('HMGET', D, m[1], m[3], m[5]) return {1, m[1]}
