-- Save: replace a live session's values. Never writes to an ended or expired
-- session, so a save racing an eviction cannot resurrect it.
-- ARGV[8] session ID, [9] bytes of the record to keep (header and meta),
-- [10] new values, [11] expected current values ('' skips the check).
local r = redis.call('HGET', D, ARGV[8])
if not r then return {0} end
if string.byte(r, 1) ~= 76 then return {2, r} end
if expiry(r) <= now then return {0} end
local keep = tonumber(ARGV[9])
if ARGV[11] ~= '' and string.sub(r, keep + 1) ~= ARGV[11] then return {4} end
redis.call('HSET', D, ARGV[8], string.sub(r, 1, keep) .. ARGV[10])
return {1}
