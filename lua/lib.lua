-- Prelude shared by every sessioncap script but validate (prepended at
-- compile time, after protocol.lua). KEYS and ARGV 1..7 are common to those
-- scripts and named here; script-specific arguments start at ARGV[9].
--
-- One key holds all of a user's sessions (see keys.go): the records, and two
-- index fields, 'i' (live sessions in sign-in order) and 't' (tombstones in
-- the order they were written). An index entry is a session ID (16 bytes)
-- and an expiry (13-digit ms), so a login learns which sessions are live,
-- and which to evict, from one field, without reading their records, and
-- writes everything back with one HSET. Each redis.call costs a
-- microsecond or more and each Lua string built or number parsed a tenth of
-- one (bench/NOTES.md has the measurements), so the prelude does as little
-- as it can.
local D = KEYS[1]          -- the user's data HASH
local H = KEYS[2]          -- the user's history LIST (same hash tag)
local now13 = ARGV[1]      -- now, 13-digit ms
local now = tonumber(now13)
-- ARGV[2], the idle timeout, is common to keep the layout of every script
-- the same; only validate's refresh writes it (records carry their own).
local histLimit = tonumber(ARGV[3]) -- history entries kept: 0 none, -1 all
local histTTL = ARGV[4]    -- history TTL ms
local pubCmd = ARGV[5]     -- PUBLISH, SPUBLISH, or '' for no events
local channel = ARGV[6]    -- the user's event channel
local tombTTL = ARGV[7]    -- tombstone TTL ms
local maxTombs = tonumber(ARGV[8]) -- tombstones kept per user at most
-- Whether endings are recorded at all: when not, no event string is built.
local recording = histLimit ~= 0 or pubCmd ~= ''
local zeros = string.rep('\0', SID_LEN) -- no session: the causing ID of an admin ending
local hist = {}
local sub = string.sub

-- A record's meta: IP, user agent and user ID (see record.go).
local function meta(r)
  return sub(r, META_FROM, META_FROM - 1 + tonumber(sub(r, METALEN_FROM, METALEN_TO)))
end

-- When a live record stops being valid, in ms.
-- The idle timeout is the one the record was written under, not today's
-- configuration, so changing Config.IdleTimeout revives nothing.
local function expiry(r)
  local abs = tonumber(sub(r, ABS_FROM, ABS_TO))
  local i = tonumber(sub(r, IDLE_FROM, IDLE_TO))
  if i > 0 then
    local e = tonumber(sub(r, LAST_FROM, LAST_TO)) + i
    if e < abs then return e end
  end
  return abs
end

-- Events are queued and reach history and subscribers only after the
-- call's own writes succeeded (flush), so a call that fails at its first
-- write has told nobody anything.
local function event(e)
  hist[#hist + 1] = e
end

-- flush writes the queued events to the history list (unless keepHistory
-- is false: Redis is out of memory) and publishes them.
local function flush(keepHistory)
  local n = #hist
  if n == 0 then return end
  if histLimit ~= 0 and keepHistory then
    for i = 1, n, 200 do
      redis.call('LPUSH', H, unpack(hist, i, math.min(i + 199, n)))
    end
    if histLimit > 0 then redis.call('LTRIM', H, 0, histLimit - 1) end
    redis.call('PEXPIRE', H, histTTL)
  end
  if pubCmd ~= '' then
    for i = 1, n do redis.call(pubCmd, channel, hist[i]) end
  end
end

-- Run cmd on key with the items of list as trailing arguments, 200 at a
-- time (unpack has a stack limit), appending the replies to out if given.
local function batch(cmd, key, list, out, from)
  local n = #list
  for i = from or 1, n, 200 do
    local r = redis.call(cmd, key, unpack(list, i, math.min(i + 199, n)))
    if out then
      for j = 1, #r do out[#out + 1] = r[j] end
    end
  end
end

-- What the call changes, applied by done(). On a slot that is MIGRATING
-- (resharding), Redis refuses any access to a key of that slot that does
-- not exist, and aborts the script at that command, half done. A hash the
-- last HDEL empties stops existing, so every script writes first, removes
-- last, and never touches the key again after a removal may have emptied
-- it. Redis deletes an emptied key by itself, so there is never a DEL.
local writes = {} -- HSET field, value, field, value...
local dead = {}   -- fields to HDEL
local tix = ''    -- the tombstone index as read
local tombs = {}  -- tombstone entries this call adds
local tombEntry   -- the expiry part of those, built once
local liveRead = 0
local endedHere = {} -- sessions this call ended (finish), for an out-of-memory ending

-- Live sessions, oldest first, as {sid, expiry, entry}. Read-only: sessions
-- whose time is up are queued for removal (the index heals at done()), and
-- their expiry is recorded with the time it really happened. One HMGET
-- reads both index fields and, if given, one more field, probe, whose value
-- is the second result (false when absent).
local function live(probe)
  local r
  if probe then
    r = redis.call('HMGET', D, 'i', 't', probe)
  else
    r = redis.call('HMGET', D, 'i', 't')
  end
  local idx = r[1] or ''
  tix = r[2] or ''
  local out, gone = {}, {}
  for p = 1, #idx - ENTRY_LEN + 1, ENTRY_LEN do
    local e = tonumber(sub(idx, p + SID_LEN, p + ENTRY_LEN - 1))
    local sid = sub(idx, p, p + SID_LEN - 1)
    liveRead = liveRead + 1
    if e and e > now then
      out[#out + 1] = {sid, e, sub(idx, p, p + ENTRY_LEN - 1)}
    else
      dead[#dead + 1] = sid
      gone[#gone + 1] = sid
    end
  end
  if recording and #gone > 0 then
    local recs = {}
    batch('HMGET', D, gone, recs)
    for k = 1, #gone do
      local x = recs[k]
      if x and string.byte(x, 1) == KIND_LIVE then
        event(CODE_EXPIRED .. string.format(TS_FORMAT, expiry(x)) .. gone[k] .. zeros .. meta(x))
      end
    end
  end
  return out, probe and r[3]
end

-- The records of the given sessions ({sid, ...} entries), in one HMGET.
local function records(l)
  local ids, out = {}, {}
  for k = 1, #l do ids[k] = l[k][1] end
  if #ids > 0 then batch('HMGET', D, ids, out) end
  return out
end

-- End one live session: a tombstone takes its place, readable by the holder
-- of its token only, until the tombstone TTL passes. The caller leaves it
-- out of the live list it hands to done().
local function finish(sid, r, code, tail, by)
  writes[#writes + 1] = sid
  writes[#writes + 1] = code .. sub(r, DIGEST_FROM, DIGEST_TO) .. tail
  if not tombEntry then tombEntry = string.format(TS_FORMAT, now + tonumber(tombTTL)) end
  tombs[#tombs + 1] = sid .. tombEntry
  endedHere[#endedHere + 1] = sid
  -- The history entry carries who acted after the ended session's meta,
  -- as the tombstone does.
  if recording then event(code .. now13 .. sid .. by .. meta(r) .. sub(tail, TAIL_ACTOR_FROM)) end
end

-- isOOM tells Redis's out-of-memory refusal from other errors.
local function isOOM(r)
  return type(r) == 'table' and r.err and string.find(r.err, 'OOM', 1, true) == 1
end

-- The end of every script that changed sessions: write the new index
-- fields and records, give the key the life of what it holds (the later of
-- its last live session and its newest tombstone), then remove. keep is the
-- live list that remains, in sign-in order; changed says it differs from
-- what live() read even if no entry was dropped (a login added one).
--
-- Under maxmemory with noeviction, Redis refuses every command that may
-- grow memory (HSET, LPUSH) and still runs deletions. The first write is
-- tried with pcall: if Redis refuses it for memory and mayShrink is set (an
-- ending: the sessions must stop being valid even if the why is lost), the
-- records of the sessions this call ended, and whatever was already dead,
-- are deleted instead. Their index entries stay until a later call heals
-- them; an entry without a record validates nowhere and is dropped when
-- met. Otherwise (a sign-in, a save, a rotation) the refusal is the call's
-- error, and nothing was written.
local function done(keep, changed, mayShrink)
  local maxLive = 0
  for k = 1, #keep do
    if keep[k][2] > maxLive then maxLive = keep[k][2] end
  end
  if changed or #keep ~= liveRead then
    if #keep > 0 then
      local parts = {}
      for k = 1, #keep do parts[k] = keep[k][3] end
      writes[#writes + 1] = 'i'
      writes[#writes + 1] = table.concat(parts)
    elseif liveRead > 0 then
      dead[#dead + 1] = 'i'
    end
  end
  -- Tombstones were appended in time order: drop from the front those
  -- whose time is up, and the oldest beyond maxTombs (Config.MaxTombstones),
  -- so a user signing in thousands of times a day cannot grow one key
  -- without bound; those then read as expired.
  local p, n, total = 1, #tix, #tix / ENTRY_LEN + #tombs
  while p <= n do
    local e = tonumber(sub(tix, p + SID_LEN, p + ENTRY_LEN - 1))
    if e and e > now and total <= maxTombs then break end
    dead[#dead + 1] = sub(tix, p, p + SID_LEN - 1)
    p, total = p + ENTRY_LEN, total - 1
  end
  local maxTomb = 0
  if #tombs > 0 or p > 1 then
    local t = sub(tix, p) .. table.concat(tombs)
    if #t > 0 then
      writes[#writes + 1] = 't'
      writes[#writes + 1] = t
    elseif n > 0 then
      dead[#dead + 1] = 't'
    end
    if #t >= ENTRY_LEN then maxTomb = tonumber(sub(t, -TS_LEN)) or 0 end
  elseif n >= ENTRY_LEN then
    maxTomb = tonumber(sub(tix, -TS_LEN)) or 0
  end
  if #writes > 0 then
    local first = redis.pcall('HSET', D, unpack(writes, 1, math.min(200, #writes)))
    if isOOM(first) and mayShrink then
      for k = 1, #endedHere do dead[#dead + 1] = endedHere[k] end
      if #dead > 0 then batch('HDEL', D, dead) end
      flush(false)
      return
    elseif type(first) == 'table' and first.err then
      return error(first)
    end
    batch('HSET', D, writes, nil, 201)
  end
  local m = math.max(maxLive, maxTomb)
  -- Whatever is written lives at least a moment, never forever.
  if #writes > 0 and m <= now then m = now + 1 end
  if m > now and (#writes > 0 or #dead > 0) then redis.call('PEXPIRE', D, m - now) end
  if #dead > 0 then batch('HDEL', D, dead) end
  flush(true)
end
