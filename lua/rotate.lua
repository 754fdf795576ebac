-- Rotate: a new secret for a live session; the old token stops working at
-- once.
local sid = ARGV[9]       -- the session's ID
local oldDigest = ARGV[10] -- the digest of the secret the caller holds
local newDigest = ARGV[11] -- the digest of the new secret
local r = redis.call('HGET', D, sid)
-- A retried Rotate (go-redis resends after a lost reply) finds the new
-- digest already in place: the same new token is then the right answer.
if r and string.byte(r, 1) == KIND_LIVE and sub(r, DIGEST_FROM, DIGEST_TO) == newDigest then
  return {STATUS_OK}
end
if not r or sub(r, DIGEST_FROM, DIGEST_TO) ~= oldDigest then return {STATUS_NONE} end
if string.byte(r, 1) ~= KIND_LIVE then return {STATUS_ENDED, r} end
if expiry(r) <= now then return {STATUS_NONE} end
-- The kind byte, the new digest, then the record as it was.
redis.call('HSET', D, sid, sub(r, 1, DIGEST_FROM - 1) .. newDigest .. sub(r, CREATED_FROM))
event(CODE_ROTATED .. now13 .. sid .. zeros .. meta(r))
flush(true)
return {STATUS_OK}
