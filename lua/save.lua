-- Save: replace a live session's values. Never writes to an ended or expired
-- session, so a save racing an eviction cannot resurrect it.
local sid = ARGV[9]               -- the session's ID
local prefixLen = tonumber(ARGV[10]) -- bytes of the record to keep (header and meta)
local values = ARGV[11]           -- the new values
local expect = ARGV[12]           -- the values the caller read ('' skips the check)
local r = redis.call('HGET', D, sid)
if not r then return {STATUS_NONE} end
if string.byte(r, 1) ~= KIND_LIVE then return {STATUS_ENDED, r} end
if expiry(r) <= now then return {STATUS_NONE} end
if expect ~= '' and sub(r, prefixLen + 1) ~= expect then return {STATUS_CONFLICT} end
redis.call('HSET', D, sid, sub(r, 1, prefixLen) .. values)
return {STATUS_OK}
