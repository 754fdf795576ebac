-- Rotate: a new secret for a live session; the old token stops working at
-- once. ARGV[8] session ID, [9] old secret digest, [10] new secret digest.
local sid = ARGV[8]
local r = redis.call('HGET', D, sid)
-- A retried Rotate (go-redis resends after a lost reply) finds the new
-- digest already in place: the same new token is then the right answer.
if r and string.byte(r, 1) == 76 and string.sub(r, 2, 17) == ARGV[10] then return {1} end
if not r or string.sub(r, 2, 17) ~= ARGV[9] then return {0} end
if string.byte(r, 1) ~= 76 then return {2, r} end
if expiry(r) <= now then return {0} end
redis.call('HSET', D, sid, 'L' .. ARGV[10] .. string.sub(r, 18))
event('T' .. now13 .. sid .. zeros .. meta(r))
flush()
return {1}
