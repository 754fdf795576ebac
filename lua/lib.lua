-- Prelude shared by every sessioncap script but validate (prepended at
-- compile time, after protocol.lua). KEYS and ARGV 1..8 are common to those
-- scripts and named here; script-specific arguments start at ARGV[9].
--
-- One key holds all of a user's sessions (see keys.go): the records, the
-- live index 'j' and the tombstone index 't'. The live index holds every
-- live session twice, in two orders, so that no call has to walk it:
--
--   'j' = L .. X, n entries each (n = #j / LIVE_ENTRY_LEN)
--   L: session IDs (16 bytes each) in sign-in order: a login evicts from
--      the front, a listing pages from the back;
--   X: expiry (13-digit ms) .. session ID (29 bytes each), sorted: the
--      expired sessions are a prefix found by binary search, the latest
--      expiry (the key's TTL) is the last entry.
--
-- Lua touches O(log n) entries plus those the call ends; the rest is
-- string.find and string.sub over the index, which run in C at memcpy
-- speed (45 bytes a session: 45 KB at the default ceiling of 1,000).
-- Each redis.call costs a microsecond or more and each Lua string built or
-- number parsed a tenth of one (bench/NOTES.md has the measurements), so
-- the prelude does as little as it can.
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

-- A record's meta: IP, user agent and user ID (see record.go). A record
-- whose length field is not a number has none: a record that cannot be
-- read must not stop the call that ends it.
local function meta(r)
  local n = tonumber(sub(r, METALEN_FROM, METALEN_TO))
  if not n then return '' end
  return sub(r, META_FROM, META_FROM - 1 + n)
end

-- When a live record stops being valid, in ms; 0 (long past) for one whose
-- times cannot be read, so it counts as gone.
-- The idle timeout is the one the record was written under, not today's
-- configuration, so changing Config.IdleTimeout revives nothing.
local function expiry(r)
  local abs = tonumber(sub(r, ABS_FROM, ABS_TO))
  local i = tonumber(sub(r, IDLE_FROM, IDLE_TO))
  local last = tonumber(sub(r, LAST_FROM, LAST_TO))
  if not abs or not i or not last then return 0 end
  if i > 0 then
    local e = last + i
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
local L, X = '', '' -- the live index's two orders (see above), as changed
local jRead = false -- whether 'j' existed
local jDirty = false -- whether L and X changed
local tix = ''    -- the tombstone index as read
local tRead, tDamaged = false, false -- whether 't' existed, and was not whole entries
local tombs = {}  -- tombstone entries this call adds
local tombEntry   -- the expiry part of those, built once
local endedHere = {} -- sessions this call ended (finish), for an out-of-memory ending

-- The 1-based start of the entry of s (entries w bytes wide, the ID at
-- offset off within each) that holds sid, or nil. string.find runs in C;
-- a match that straddles two entries is skipped.
local function findEntry(s, sid, w, off)
  local from = 1
  while true do
    local p = string.find(s, sid, from, true)
    if not p then return nil end
    if (p - 1 - off) % w == 0 then return p - off end
    from = p + 1
  end
end

-- The number of X entries whose first #k bytes sort at or below k: binary
-- search over fixed-width entries, O(log n) Lua.
local function xUpTo(k)
  local lo, hi, kl = 0, #X / ENTRY_LEN, #k - 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local p = mid * ENTRY_LEN + 1
    if sub(X, p, p + kl) <= k then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- Add a live session with its expiry (13-digit ms): newest in sign-in
-- order, in place in expiry order.
local function indexAdd(sid, e13)
  local k = e13 .. sid
  local p = xUpTo(k) * ENTRY_LEN
  X = sub(X, 1, p) .. k .. sub(X, p + 1)
  L = L .. sid
  jDirty = true
end

-- Drop a session from both orders, if there.
local function indexDrop(sid)
  local p = findEntry(L, sid, SID_LEN, 0)
  if p then L = sub(L, 1, p - 1) .. sub(L, p + SID_LEN) end
  local q = findEntry(X, sid, ENTRY_LEN, TS_LEN)
  if q then X = sub(X, 1, q - 1) .. sub(X, q + ENTRY_LEN) end
  if p or q then jDirty = true end
end

-- How many live sessions the index holds.
local function liveCount()
  return #L / SID_LEN
end

-- The i-th session in sign-in order (1 = oldest).
local function liveAt(i)
  return sub(L, (i - 1) * SID_LEN + 1, i * SID_LEN)
end

-- Whether sid is in the live index.
local function isLive(sid)
  return findEntry(L, sid, SID_LEN, 0) ~= nil
end

-- Rebuild the live index from the records themselves: when 'j' is absent
-- while live records exist (written by the previous format, whose index
-- was 'i'), or is not whole entries (damaged). A missing index must never
-- mean "no sessions", or they would escape the cap and every logout.
-- HGETALL is bounded here: without an index the hash holds only what the
-- index would list, plus at most MaxTombstones tombstones.
local function rebuild()
  local all = redis.call('HGETALL', D)
  local tombed = {}
  for p = 1, #tix - ENTRY_LEN + 1, ENTRY_LEN do tombed[sub(tix, p, p + SID_LEN - 1)] = true end
  local ls = {}
  for k = 1, #all, 2 do
    local f, r = all[k], all[k + 1]
    if #f == SID_LEN then
      local e, c = 0, nil
      if string.byte(r, 1) == KIND_LIVE then
        e, c = expiry(r), tonumber(sub(r, CREATED_FROM, CREATED_TO))
      end
      if c and e > now then
        ls[#ls + 1] = {f, c, string.format(TS_FORMAT, e)}
      elseif not tombed[f] then
        -- Neither live nor a tombstone the index lists: it cannot be
        -- read, so it counts as gone, and goes.
        dead[#dead + 1] = f
      end
    elseif f ~= 'j' and f ~= 't' and f ~= 'c' then
      dead[#dead + 1] = f
    end
  end
  table.sort(ls, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[1] < b[1]
  end)
  L, X = '', ''
  for k = 1, #ls do indexAdd(ls[k][1], ls[k][3]) end
  jDirty = true
end

-- Read the indexes and drop the sessions whose time is up: they are an X
-- prefix, found by binary search. Their records are removed and their
-- expiry recorded with the time it really happened. One HMGET reads both
-- index fields and, if given, one more field, probe, whose value is
-- returned (false when absent).
local function load(probe)
  local r
  if probe then
    r = redis.call('HMGET', D, 'j', 't', 'c', probe)
  else
    r = redis.call('HMGET', D, 'j', 't', 'c')
  end
  local j = r[1]
  tix = r[2] or ''
  tRead = r[2] ~= false
  if #tix % ENTRY_LEN ~= 0 or (tRead and #tix == 0) then
    -- Damaged: the tombstones it listed are dropped by rebuild() below.
    tix, tDamaged = '', true
  end
  jRead = j ~= false
  if j and #j > 0 and #j % LIVE_ENTRY_LEN == 0 then
    local n = #j / LIVE_ENTRY_LEN
    L, X = sub(j, 1, n * SID_LEN), sub(j, n * SID_LEN + 1)
  end
  -- Every field is a live session the index lists, a tombstone the
  -- tombstone index lists, or one of those indexes: a hash that holds more
  -- has sessions the index lost (the previous format's index, damage), and
  -- the index is rebuilt from the records. HLEN is O(1).
  local known = liveCount() + math.floor(#tix / ENTRY_LEN)
  if j then known = known + 1 end
  if tRead then known = known + 1 end
  if r[3] then known = known + 1 end
  if redis.call('HLEN', D) > known or (j and #L == 0) then rebuild() end
  local gone = xUpTo(now13)
  if gone > 0 then
    local ids = {}
    for k = 1, gone do
      local p = (k - 1) * ENTRY_LEN + 1
      ids[k] = sub(X, p + TS_LEN, p + ENTRY_LEN - 1)
    end
    X = sub(X, gone * ENTRY_LEN + 1)
    for k = 1, gone do
      local p = findEntry(L, ids[k], SID_LEN, 0)
      if p then L = sub(L, 1, p - 1) .. sub(L, p + SID_LEN) end
      dead[#dead + 1] = ids[k]
    end
    jDirty = true
    if recording then
      local recs = {}
      batch('HMGET', D, ids, recs)
      for k = 1, gone do
        local x = recs[k]
        if x and string.byte(x, 1) == KIND_LIVE then
          event(CODE_EXPIRED .. string.format(TS_FORMAT, expiry(x)) .. ids[k] .. zeros .. meta(x))
        end
      end
    end
  end
  if probe then return r[4] end
end

-- The records of the given session IDs, in one HMGET.
local function records(ids)
  local out = {}
  if #ids > 0 then batch('HMGET', D, ids, out) end
  return out
end

-- End one live session: a tombstone takes its place, readable by the holder
-- of its token only, until the tombstone TTL passes, and it leaves the live
-- index.
local function finish(sid, r, code, tail, by)
  writes[#writes + 1] = sid
  writes[#writes + 1] = code .. sub(r, DIGEST_FROM, DIGEST_TO) .. tail
  if not tombEntry then tombEntry = string.format(TS_FORMAT, now + tonumber(tombTTL)) end
  tombs[#tombs + 1] = sid .. tombEntry
  endedHere[#endedHere + 1] = sid
  indexDrop(sid)
  -- The history entry carries who acted after the ended session's meta,
  -- as the tombstone does.
  if recording then event(code .. now13 .. sid .. by .. meta(r) .. sub(tail, TAIL_ACTOR_FROM)) end
end

-- isOOM tells Redis's out-of-memory refusal from other errors.
local function isOOM(r)
  return type(r) == 'table' and r.err and string.find(r.err, 'OOM', 1, true) == 1
end

-- The end of every script that changed sessions: write the live index (if
-- it changed) and the records, give the key the life of what it holds
-- (the later of its last live session and its newest tombstone), then
-- remove.
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
local function done(mayShrink)
  if jDirty then
    if #L > 0 then
      writes[#writes + 1] = 'j'
      writes[#writes + 1] = L .. X
    elseif jRead then
      dead[#dead + 1] = 'j'
    end
  end
  -- Tombstones were appended in time order: drop from the front those
  -- whose time is up, and the oldest beyond maxTombs (Config.MaxTombstones),
  -- so a user signing in thousands of times a day cannot grow one key
  -- without bound; those then read as expired. Only the newest maxTombs of
  -- this call's own are written at all.
  local skip = math.max(0, #tombs - maxTombs)
  local p, n, total = 1, #tix, #tix / ENTRY_LEN + #tombs - skip
  while p <= n do
    local e = tonumber(sub(tix, p + SID_LEN, p + ENTRY_LEN - 1))
    if e and e > now and total <= maxTombs then break end
    dead[#dead + 1] = sub(tix, p, p + SID_LEN - 1)
    p, total = p + ENTRY_LEN, total - 1
  end
  local maxTomb = 0
  if #tombs > 0 or p > 1 or tDamaged then
    local t = sub(tix, p) .. table.concat(tombs, '', skip + 1)
    if #t > 0 then
      writes[#writes + 1] = 't'
      writes[#writes + 1] = t
    elseif tRead then
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
  -- The tombstones this call ended beyond maxTombs were written above as
  -- records (so the write order stays "writes first"); they go now.
  for k = 1, skip do dead[#dead + 1] = sub(tombs[k], 1, SID_LEN) end
  local maxLive = 0
  if #X >= ENTRY_LEN then maxLive = tonumber(sub(X, -ENTRY_LEN, -ENTRY_LEN + TS_LEN - 1)) or 0 end
  local m = math.max(maxLive, maxTomb)
  -- Whatever is written lives at least a moment, never forever.
  if #writes > 0 and m <= now then m = now + 1 end
  if m > now and (#writes > 0 or #dead > 0) then redis.call('PEXPIRE', D, m - now) end
  if #dead > 0 then batch('HDEL', D, dead) end
  flush(true)
end
