-- Prelude shared by every sessioncap script but validate (prepended at
-- compile time, after protocol.lua). KEYS and ARGV 1..8 are common to those
-- scripts and named here; script-specific arguments start at ARGV[9].
--
-- One key holds all of a user's sessions (see keys.go): the records, the
-- live index (index.lua) and the tombstone index 't'. Each redis.call costs
-- a microsecond or more and each Lua string built or number parsed a tenth
-- of one (bench/NOTES.md has the measurements), so the prelude does as
-- little as it can.
--
-- The call's state is declared here and set by begin (at the end of this
-- file), which every script calls first: in the function library
-- (library.go) these locals outlive a call.
local H          -- the user's history LIST (same hash tag): KEYS[2]
local now13      -- now, 13-digit ms: ARGV[1]
local now        -- the same, a number
-- ARGV[2], the idle timeout, is common to keep the layout of every script
-- the same; only validate's refresh writes it (records carry their own).
local histLimit  -- history entries kept: 0 none, -1 all: ARGV[3]
local histTTL    -- history TTL ms: ARGV[4]
local pubCmd     -- PUBLISH, SPUBLISH, or '' for no events: ARGV[5]
local channel    -- the user's event channel: ARGV[6]
local tombTTL    -- tombstone TTL ms: ARGV[7]
local maxTombs   -- tombstones kept per user at most: ARGV[8]
local recording  -- whether endings are recorded at all: when not, no event string is built
local zeros      -- SID_LEN zero bytes: no session, the causing ID of an admin ending
local hist       -- the events this call queued (event, flush)

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
    local r = redis.call(cmd, key, unpack(list, i, i + 199 < n and i + 199 or n))
    if out then
      for j = 1, #r do out[#out + 1] = r[j] end
    end
  end
end

-- What the call changes, applied by done(): writes and dead (index.lua)
-- collect the fields to HSET and HDEL. On a slot that is MIGRATING
-- (resharding), Redis refuses any access to a key of that slot that does
-- not exist, and aborts the script at that command, half done. A hash the
-- last HDEL empties stops existing, so every script writes first, removes
-- last, and never touches the key again after a removal may have emptied
-- it. Redis deletes an emptied key by itself, so there is never a DEL.
local tix        -- the tombstone index as read
local tRead, tDamaged -- whether 't' existed, and was not whole entries
local tombs      -- tombstone index entries this call adds
local tombRecs   -- and the tombstones themselves, written by done()
local cField     -- field 'c' as read (LogoutAll's running count), or false
local tombEntry  -- the expiry part of those, built once
local tombUntil  -- and the same as a number
local endedHere  -- sessions this call ended (finish), for an out-of-memory ending

-- A record's expiry as an index key (13 digits).
local function expiry13(r)
  return string.format(TS_FORMAT, expiry(r))
end

-- Whether r is the record of a live session.
local function liveRecord(r)
  return r and string.byte(r, 1) == KIND_LIVE and expiry(r) > now
end

-- Rebuild the live index from the records themselves: when it is missing
-- while live records exist (written by the previous layout, whose index
-- was 'i'), or cannot be read (damaged). A missing index must never mean
-- "no sessions", or they would escape the cap and every logout. HGETALL is
-- bounded here: without an index the hash holds only what the index would
-- list, plus at most MaxTombstones tombstones.
local function rebuild()
  local all = redis.call('HGETALL', D)
  local tombed = {}
  for p = 1, #tix - ENTRY_LEN + 1, ENTRY_LEN do tombed[sub(tix, p, p + SID_LEN - 1)] = true end
  local ls = {}
  local maxID = 0
  indexReset()
  for k = 1, #all, 2 do
    local f, r = all[k], all[k + 1]
    if #f == SID_LEN then
      local c
      if liveRecord(r) then c = tonumber(sub(r, CREATED_FROM, CREATED_TO)) end
      if c then
        ls[#ls + 1] = {f, c, expiry13(r)}
      elseif not tombed[f] then
        -- Neither live nor a tombstone the index lists: it cannot be
        -- read, so it counts as gone, and goes.
        dead[#dead + 1] = f
      end
    elseif f ~= 't' and f ~= 'c' and f ~= 'j' and f ~= 'k' then
      -- Blocks of the old index and anything foreign. The new index
      -- numbers its blocks past every old one, so none is rewritten, and
      -- indexSave() replaces or removes 'j' and 'k' itself.
      dead[#dead + 1] = f
      if sub(f, 1, #BLOCK_PREFIX) == BLOCK_PREFIX and #f == #BLOCK_PREFIX + ID_LEN then
        maxID = math.max(maxID, (tonumber(sub(f, #BLOCK_PREFIX + 1)) or 0) + 1)
      end
    end
  end
  nextID = maxID
  table.sort(ls, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[1] < b[1]
  end)
  for k = 1, #ls do indexAdd(ls[k][1], ls[k][3]) end
end

-- Read the indexes and drop the sessions whose time is up (an expiry-order
-- prefix): their records are removed and their expiry recorded with the
-- time it really happened. One HMGET reads the index fields and the given
-- probes (session IDs), whose values it returns (false when absent).
local function load(...)
  local r = redis.call('HMGET', D, 'j', 'k', 't', 'c', ...)
  tix = r[3] or ''
  tRead = r[3] ~= false
  cField = r[4]
  if #tix % ENTRY_LEN ~= 0 or (tRead and #tix == 0) then
    -- Damaged: the tombstones it listed are dropped by rebuild() below.
    tix, tDamaged = '', true
  end
  local ok = indexLoad(r[1] or nil, r[2] or nil)
  -- Every field is a live session the index lists, a tombstone the
  -- tombstone index lists, or a field of those indexes: a hash that holds
  -- more has sessions the index lost (the previous layout's index, damage),
  -- and the index is rebuilt from the records. HLEN is O(1).
  if ok then
    local known = idxN + math.floor(#tix / ENTRY_LEN) + indexFields()
    if tRead then known = known + 1 end
    if r[4] then known = known + 1 end
    ok = redis.call('HLEN', D) <= known
  end
  if not ok then rebuild() end
  local gone = indexExpire(now13)
  for k = 1, #gone do dead[#dead + 1] = gone[k] end
  if recording and #gone > 0 then
    local recs = {}
    batch('HMGET', D, gone, recs)
    for k = 1, #gone do
      local x = recs[k]
      if x and string.byte(x, 1) == KIND_LIVE then
        event(CODE_EXPIRED .. expiry13(x) .. gone[k] .. zeros .. meta(x))
      end
    end
  end
  return unpack(r, 5)
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
  tombRecs[#tombRecs + 1] = code .. sub(r, DIGEST_FROM, DIGEST_TO) .. tail
  if not tombEntry then
    tombUntil = now + tombTTL
    tombEntry = string.format(TS_FORMAT, tombUntil)
  end
  tombs[#tombs + 1] = sid .. tombEntry
  endedHere[#endedHere + 1] = sid
  indexDrop(sid, indexByExpiry() and expiry13(r) or '')
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
  indexSave()
  -- Tombstones were appended in time order: drop from the front those
  -- whose time is up, and the oldest beyond maxTombs (Config.MaxTombstones),
  -- so a user signing in thousands of times a day cannot grow one key
  -- without bound; those then read as expired. Only the newest maxTombs of
  -- this call's own keep theirs.
  local skip = #tombs > maxTombs and #tombs - maxTombs or 0
  local p, n, total = 1, #tix, #tix / ENTRY_LEN + #tombs - skip
  while p <= n do
    if total <= maxTombs then
      local e = tonumber(sub(tix, p + SID_LEN, p + ENTRY_LEN - 1))
      if e and e > now then break end
    end
    dead[#dead + 1] = sub(tix, p, p + SID_LEN - 1)
    p, total = p + ENTRY_LEN, total - 1
  end
  local maxTomb = 0
  if #tombs > 0 or p > 1 or tDamaged then
    -- The kept tail of the index as read (tix itself when nothing goes:
    -- sub would hash all of it again), then this call's kept tombstones.
    local t = p == 1 and tix or sub(tix, p)
    if #tombs == skip + 1 then
      t = t .. tombs[#tombs]
    elseif #tombs > skip then
      t = t .. table.concat(tombs, '', skip + 1)
    end
    if #t > 0 then
      writes[#writes + 1] = 't'
      writes[#writes + 1] = t
    elseif tRead then
      dead[#dead + 1] = 't'
    end
    if #tombs > skip then
      maxTomb = tombUntil -- this call's, the newest
    elseif #t >= ENTRY_LEN then
      maxTomb = tonumber(sub(t, -TS_LEN)) or 0
    end
  elseif n >= ENTRY_LEN then
    maxTomb = tonumber(sub(tix, -TS_LEN)) or 0
  end
  -- This call's endings beyond maxTombs lose their records instead of
  -- becoming tombstones.
  for k = 1, #tombs do
    local s = endedHere[k] -- tombs[k]'s session (finish appends to both)
    if k <= skip then
      dead[#dead + 1] = s
    else
      writes[#writes + 1] = s
      writes[#writes + 1] = tombRecs[k]
    end
  end
  if #writes > 0 then
    local first = redis.pcall('HSET', D, unpack(writes, 1, #writes < 200 and #writes or 200))
    if isOOM(first) and mayShrink then
      -- Records only: removing an index field without writing its
      -- replacement would lose sessions from the index.
      local gone = {}
      for k = 1, #dead do
        if #dead[k] == SID_LEN then gone[#gone + 1] = dead[k] end
      end
      for k = 1, #endedHere do gone[#gone + 1] = endedHere[k] end
      if #gone > 0 then batch('HDEL', D, gone) end
      flush(false)
      return
    elseif type(first) == 'table' and first.err then
      return error(first)
    end
    batch('HSET', D, writes, nil, 201)
  end
  local m = indexMaxExpiry()
  if maxTomb > m then m = maxTomb end
  -- Whatever is written lives at least a moment, never forever.
  if #writes > 0 and m <= now then m = now + 1 end
  if m > now and (#writes > 0 or #dead > 0) then redis.call('PEXPIRE', D, m - now) end
  if #dead > 0 then batch('HDEL', D, dead) end
  flush(true)
end

-- begin sets the state of a call from its KEYS and ARGV: every script runs
-- it before anything else.
local function begin()
  indexBegin()
  H, now13 = KEYS[2], ARGV[1]
  -- Go sends only numbers in these: arithmetic converts one with a single
  -- strtod, where tonumber makes two and a C call (lbaselib.c), about 1 %
  -- of a sign-in's instructions each (bench/NOTES.md, ninth round).
  now = now13 + 0
  histLimit, histTTL, pubCmd, channel = ARGV[3] + 0, ARGV[4], ARGV[5], ARGV[6]
  tombTTL, maxTombs = ARGV[7], ARGV[8] + 0
  recording = histLimit ~= 0 or pubCmd ~= ''
  hist = reuseList(hist)
  zeros = zeros or string.rep('\0', SID_LEN)
  tix, tRead, tDamaged, tombs, tombRecs = '', false, false, reuseList(tombs), reuseList(tombRecs)
  cField, tombEntry, endedHere = nil, nil, reuseList(endedHere)
end
