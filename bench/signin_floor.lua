#!lua name=sessioncap_bench_floor
-- The sign-in floor: the Redis commands an evicting cap-1 sign-in runs in
-- steady state (MONITOR of the engine's login function), with the same key
-- and argument shape and value sizes, and none of its logic. Its
-- usec_per_call is what any script doing this work costs on this server,
-- before it decides anything.
-- The values the sign-in writes besides the record, at their steady-state
-- sizes: the index at one live session (65 bytes), the tombstone list at
-- its cap of 16 (464) and one tombstone (88). A library's top level has no
-- string library, so the first call builds them.
local INDEX, TOMBS, TOMB
redis.register_function('signin_floor', function(keys, argv)
  if not INDEX then
    INDEX, TOMBS, TOMB = string.rep('j', 65), string.rep('t', 464), string.rep('x', 88)
  end
  local data = keys[1]
  local sid = argv[9]                  -- the new session
  local rec = argv[10]                 -- its record
  local ttl = argv[7]                  -- the hash's TTL, ms
  local old = argv[16]                 -- the session this sign-in evicts
  local drop = argv[17]                -- the tombstone that falls off the list
  redis.call('HMGET', data, 'j', 'k', 't', 'c', sid)
  redis.call('HLEN', data)
  local r = redis.call('HMGET', data, old)
  redis.call('HSET', data, sid, rec, 'j', INDEX, 't', TOMBS, old, TOMB)
  redis.call('PEXPIRE', data, ttl)
  redis.call('HDEL', data, drop)
  return {0, old, r[1]}
end)
