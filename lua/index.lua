-- The live index, shared by every script (validate included; prepended at
-- compile time after protocol.lua). It holds every live session twice:
--
--   L, sign-in order: seq (SEQ_LEN digits) .. ID; seq numbers the user's
--      sign-ins, so the oldest are first (who a login evicts);
--   X, expiry order: expiry (13-digit ms) .. seq .. ID; the expired are
--      first (found by binary search), the latest expiry last (the key's
--      TTL).
--
-- Each order is a sorted list of fixed-width entries cut into blocks of at
-- most BLOCK_MAX entries (the last of several, where new entries land,
-- cut back when a change leaves it over TAIL_MAX), found through a
-- directory of their first entries, so a call reads and rewrites O(1)
-- blocks and O(log n) of the directory, never the whole index: Redis's Lua
-- hashes every byte of every string it makes (1.3 ns a byte,
-- bench/NOTES.md), so a string's size is its cost.
--
-- Stored in the user's hash:
--   small (at most SMALL_MAX sessions): 'j' = L .. X, no directory;
--   large: 'k' = header .. L directory .. X directory, and each block in
--     field BLOCK_PREFIX .. its ID. The header is the next block ID
--     (ID_LEN digits), the sessions (COUNT_LEN digits) and the L
--     directory's entries (DIR_COUNT_LEN digits); a directory entry is a
--     block ID (ID_LEN), its entries (DIR_COUNT_LEN) and its first entry.
-- A large index turns small again at SMALL_MIN sessions, not at
-- SMALL_MAX, so a user going back and forth does not convert each time.
-- The call's state is declared here and set by indexBegin, not here: in the
-- function library (library.go) these locals outlive a call.
local D      -- the user's data HASH
local sub    -- string.sub (a library reads no global when it loads)
local writes -- HSET field, value, field, value...
local dead   -- fields to HDEL

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

-- half(n) is math.floor(n / 2) for n >= 0 without a C call: the binary
-- searches below take several steps per call.
local function half(n)
  return (n - n % 2) / 2
end

-- The number of entries of s (w wide, sorted) whose first #k bytes sort
-- below k (strict) or at or below it.
local function countUpTo(s, w, k, strict)
  local lo, hi, kl = 0, #s / w, #k - 1
  while lo < hi do
    local mid = half(lo + hi)
    local p = mid * w + 1
    local e = sub(s, p, p + kl)
    if e < k or (not strict and e == k) then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- An order: while it fits one block (every small index, and a large one
-- being built) its entries are the string one and it has no directory;
-- otherwise dir, and blocks read or changed by ID.
-- A directory keeps of each block's first entry only its sort key (kw
-- bytes: the seq, or the expiry and the seq; seq is unique per user).
local function newOrder(w, kw)
  return {w = w, kw = kw, dw = ID_LEN + DIR_COUNT_LEN + kw, one = '', dir = '', blocks = {}, dirty = {}, removed = {}}
end
local byLogin, byExpiry -- the two orders
local orders   -- both, for the loops that treat them alike
local idxN     -- live sessions in the index
local nextID   -- the next block ID
local idxMode  -- 'j' (small), 'k' (large) or '' (none), as read
local idxHas   -- which of 'j' and 'k' exist, as read (indexSave removes the one it does not write)
local idxDirty -- whether the index changed
-- idxLarge: whether an order has been in blocks since the tables of
-- blocks were last emptied. Only an order in blocks (one = nil) reads or
-- changes a block, and one turns nil only in indexLoad and unfold, so a
-- call that never got there leaves the tables empty and the next
-- indexBegin skips six C calls to next.
local idxLarge = true

-- reuse returns t emptied, or a new table when there is none yet: in the
-- library the call's tables outlive it, and emptying one costs Redis less
-- than making a new one and collecting the old (bench/NOTES.md, seventh
-- round).
local function reuse(t)
  if not t then return {} end
  if next(t) == nil then return t end
  for k in pairs(t) do t[k] = nil end
  return t
end

-- reuseList is reuse for a table used only as a list: emptied from its
-- end with no call to next or pairs, which are C calls.
local function reuseList(t)
  if not t then return {} end
  for i = #t, 1, -1 do t[i] = nil end
  return t
end

-- indexBegin sets the index's state for a call: every call starts from
-- nothing read and nothing changed.
local function indexBegin()
  D, sub = KEYS[1], string.sub
  writes, dead = reuseList(writes), reuseList(dead)
  idxHas = idxHas or {}
  idxHas.j, idxHas.k = nil, nil -- its only keys
  if not orders then
    byLogin, byExpiry = newOrder(L_ENTRY_LEN, SEQ_LEN), newOrder(X_ENTRY_LEN, TS_LEN + SEQ_LEN)
    orders = {byLogin, byExpiry}
  end
  for i = 1, 2 do
    local o = orders[i]
    o.one, o.dir = '', ''
    if idxLarge then
      o.blocks, o.dirty, o.removed = reuse(o.blocks), reuse(o.dirty), reuse(o.removed)
    end
  end
  idxLarge = false
  idxN, nextID, idxMode, idxDirty = 0, 0, '', false
end

local function dirLen(o)
  if o.one then
    if #o.one > 0 then return 1 end
    return 0
  end
  return #o.dir / o.dw
end
local function dirID(o, i)
  local p = (i - 1) * o.dw + 1
  return sub(o.dir, p, p + ID_LEN - 1)
end
local function dirFirst(o, i)
  if o.one then return sub(o.one, 1, o.kw) end
  local p = (i - 1) * o.dw + ID_LEN + DIR_COUNT_LEN + 1
  return sub(o.dir, p, p + o.kw - 1)
end

-- splice returns s with its bytes from..to replaced by ins (to = from - 1
-- inserts). A change at either end makes one new string, not a result
-- and two pieces: Lua pays for a string by its bytes (bench/NOTES.md), and
-- a sign-in changes its blocks mostly at their ends (the oldest session
-- goes from the front, the newest joins at the back).
local function splice(s, from, to, ins)
  if to < from and ins == '' then return s end
  local n = #s
  if from <= 1 then
    if to >= n then return ins end
    if to < 1 then return ins .. s end
    if ins == '' then return sub(s, to + 1) end
    return ins .. sub(s, to + 1)
  end
  if to >= n then
    if from > n then return s .. ins end
    return sub(s, 1, from - 1) .. ins
  end
  return sub(s, 1, from - 1) .. ins .. sub(s, to + 1)
end

-- Block i's entries, read once per call.
local function block(o, i)
  if o.one then return o.one end
  local id = dirID(o, i)
  local b = o.blocks[id]
  if not b then
    b = redis.call('HGET', D, BLOCK_PREFIX .. id) or ''
    o.blocks[id] = b
  end
  return b
end

local function newID()
  nextID = nextID + 1
  return string.format(ID_FORMAT, nextID - 1)
end

local function dirEntry(o, id, b)
  return id .. string.format(DIR_COUNT_FORMAT, #b / o.w) .. sub(b, 1, o.kw)
end

-- Give an order that is one block a directory (it is about to grow past
-- one, or to be stored large).
local function unfold(o)
  if not o.one then return end
  o.dir = ''
  if #o.one > 0 then
    local id = newID()
    o.blocks[id], o.dirty[id] = o.one, true
    o.dir = dirEntry(o, id, o.one)
  end
  o.one, idxLarge = nil, true
end

-- Cut block id's new entries b after byte at: the first part keeps the
-- ID, the rest becomes a new block. It returns their directory entries.
local function cutBlock(o, id, b, at)
  local b1, b2, id2 = sub(b, 1, at), sub(b, at + 1), newID()
  o.blocks[id], o.dirty[id] = b1, true
  o.blocks[id2], o.dirty[id2] = b2, true
  return dirEntry(o, id, b1) .. dirEntry(o, id2, b2)
end

-- Give block i the entries b (sorted): the directory follows, an empty
-- block goes, and one over BLOCK_MAX is cut in two.
local function setBlock(o, i, b)
  idxDirty = true
  local w = o.w
  local n = #b / w
  if o.one then
    if n <= BLOCK_MAX then
      o.one = b
      return
    end
    o.one = sub(b, 1, w)
    unfold(o)
  end
  local id, p = dirID(o, i), (i - 1) * o.dw
  local entry
  if n == 0 then
    entry = ''
    o.blocks[id], o.dirty[id], o.removed[id] = nil, nil, true
  elseif n > BLOCK_MAX then
    entry = cutBlock(o, id, b, math.floor(n / 2) * w)
  elseif i > 1 and i == dirLen(o) and n > TAIL_MAX then
    -- The last of several blocks, where sign-ins and refreshes add, is
    -- read and rewritten by nearly every call, so it is kept short: all
    -- but its newest entry join the block before it if they fit, or else
    -- become a block of their own (bench/NOTES.md, eighth round).
    local cut, prev = (n - 1) * w, block(o, i - 1)
    if #prev / w + n - 1 > BLOCK_MAX then
      entry = cutBlock(o, id, b, cut)
    else
      local pid, merged, last = dirID(o, i - 1), prev .. sub(b, 1, cut), sub(b, cut + 1)
      o.blocks[pid], o.dirty[pid] = merged, true
      o.blocks[id], o.dirty[id] = last, true
      o.dir = splice(o.dir, p - o.dw + 1, p + o.dw, dirEntry(o, pid, merged) .. dirEntry(o, id, last))
      return
    end
  else
    o.blocks[id], o.dirty[id] = b, true
    entry = dirEntry(o, id, b)
  end
  o.dir = splice(o.dir, p + 1, p + o.dw, entry)
end

-- Read, in one HMGET, the blocks a sign-in needs of a large index: the
-- oldest and newest of both orders (the oldest session usually expires
-- first, and the new one last).
local function indexPrefetch()
  if byLogin.one then return end
  local want, ids, owner = {}, {}, {}
  local function add(o, i)
    if i == 0 then return end
    local id = dirID(o, i)
    if not o.blocks[id] and not owner[id] then
      want[#want + 1], ids[#ids + 1] = BLOCK_PREFIX .. id, id
      owner[id] = o
    end
  end
  add(byLogin, 1)
  add(byLogin, dirLen(byLogin))
  add(byExpiry, 1)
  add(byExpiry, dirLen(byExpiry))
  if #want == 0 then return end
  local got = redis.call('HMGET', D, unpack(want))
  for k = 1, #want do
    local id = ids[k]
    owner[id].blocks[id] = got[k] or ''
  end
end

-- The last block whose first entry sorts at or below k (1 if none does).
local function locate(o, k)
  local lo, hi, at = 1, dirLen(o), 1
  while lo <= hi do
    local mid = half(lo + hi)
    if dirFirst(o, mid) <= k then at, lo = mid, mid + 1 else hi = mid - 1 end
  end
  return at
end

local function insert(o, k)
  if dirLen(o) == 0 then
    if o.one then
      o.one = k
    else
      local id = newID()
      o.blocks[id], o.dirty[id] = k, true
      o.dir = dirEntry(o, id, k)
    end
    idxDirty = true
    return
  end
  local i = locate(o, k)
  local b = block(o, i)
  local p = countUpTo(b, o.w, k) * o.w
  setBlock(o, i, splice(b, p + 1, p, k))
end

-- Where sid's entry is (block, position), looked up by pre, what its entry
-- starts with (its expiry, or its seq and ID); every block is searched if
-- it is not there (an index that disagrees with its records: damage).
local function findSid(o, pre, sid, off)
  local n = dirLen(o)
  local i = locate(o, pre)
  local from = i
  while i <= n do
    local q = findEntry(block(o, i), sid, o.w, off)
    if q then return i, q end
    if i == n or sub(dirFirst(o, i + 1), 1, #pre) > pre then break end
    i = i + 1
  end
  for j = 1, n do
    if j < from or j > i then
      local q = findEntry(block(o, j), sid, o.w, off)
      if q then return j, q end
    end
  end
end

local function removeAt(o, i, q)
  local b = block(o, i)
  setBlock(o, i, splice(b, q, q + o.w - 1, ''))
end

-- Add a live session with its expiry (13-digit ms): newest in sign-in
-- order, in place in expiry order.
local function indexAdd(sid, e13)
  local seq = 1
  local n = dirLen(byLogin)
  if n > 0 then
    local b = block(byLogin, n)
    seq = (tonumber(sub(b, -L_ENTRY_LEN, -L_ENTRY_LEN + SEQ_LEN - 1)) or 0) + 1
  end
  local s = string.format(SEQ_FORMAT, seq)
  insert(byLogin, s .. sid)
  insert(byExpiry, e13 .. s .. sid)
  idxN = idxN + 1
end

-- Whether indexDrop needs a session's expiry to find it quickly: only in
-- blocks, where the expiry picks the block; one string is searched whole.
local function indexByExpiry()
  return not byExpiry.one
end

-- Drop a session from both orders, if there. e13 is its expiry as its
-- record says ('' if it has no readable record, or indexByExpiry() is
-- false).
local function indexDrop(sid, e13)
  local i, q = findSid(byExpiry, e13, sid, TS_LEN + SEQ_LEN)
  if not i then return end
  local lkey = sub(block(byExpiry, i), q + TS_LEN, q + X_ENTRY_LEN - 1)
  removeAt(byExpiry, i, q)
  local j, r = findSid(byLogin, lkey, sid, SEQ_LEN)
  if j then removeAt(byLogin, j, r) end
  idxN = idxN - 1
end

-- Move a session to a later expiry (an idle refresh); false if it is not
-- in the index.
local function indexMove(sid, old13, new13)
  local i, q = findSid(byExpiry, old13, sid, TS_LEN + SEQ_LEN)
  if not i then return false end
  local rest = sub(block(byExpiry, i), q + TS_LEN, q + X_ENTRY_LEN - 1)
  removeAt(byExpiry, i, q)
  insert(byExpiry, new13 .. rest)
  return true
end

-- Remove from the index every session whose expiry is at or before
-- now13, and return their IDs: an X prefix, found by binary search.
local function indexExpire(now13)
  local gone = {}
  while dirLen(byExpiry) > 0 and sub(dirFirst(byExpiry, 1), 1, TS_LEN) <= now13 do
    local b = block(byExpiry, 1)
    local m = countUpTo(b, X_ENTRY_LEN, now13)
    for q = 1, m do
      local p = (q - 1) * X_ENTRY_LEN + TS_LEN + 1
      gone[#gone + 1] = sub(b, p, p + SEQ_LEN + SID_LEN - 1)
    end
    setBlock(byExpiry, 1, sub(b, m * X_ENTRY_LEN + 1))
    if m * X_ENTRY_LEN < #b then break end
  end
  for k = 1, #gone do
    local sid = sub(gone[k], SEQ_LEN + 1)
    local j, r = findSid(byLogin, gone[k], sid, SEQ_LEN)
    if j then removeAt(byLogin, j, r) end
    idxN = idxN - 1
    gone[k] = sid
  end
  return gone
end

-- The IDs of the oldest k sessions (all if k is nil), oldest first.
local function indexOldest(k)
  local out = {}
  for i = 1, dirLen(byLogin) do
    local b = block(byLogin, i)
    for p = SEQ_LEN + 1, #b, L_ENTRY_LEN do
      if k and #out >= k then return out end
      out[#out + 1] = sub(b, p, p + SID_LEN - 1)
    end
  end
  return out
end

-- Up to size sign-in entries (seq .. ID) that sort before after ('' for
-- the newest), newest first, and whether older ones remain.
local function indexNewest(after, size)
  local out = {}
  local i = dirLen(byLogin)
  local cut = after ~= ''
  if cut then i = locate(byLogin, after) end
  while i >= 1 do
    local b = block(byLogin, i)
    local m = #b / L_ENTRY_LEN
    if cut then m, cut = countUpTo(b, L_ENTRY_LEN, after, true), false end
    for q = m, 1, -1 do
      if #out >= size then return out, true end
      local p = (q - 1) * L_ENTRY_LEN + 1
      out[#out + 1] = sub(b, p, p + L_ENTRY_LEN - 1)
    end
    i = i - 1
  end
  return out, false
end

-- The latest expiry in the index, in ms (0 if empty).
local function indexMaxExpiry()
  local n = dirLen(byExpiry)
  if n == 0 then return 0 end
  return tonumber(sub(block(byExpiry, n), -X_ENTRY_LEN, -X_ENTRY_LEN + TS_LEN - 1)) or 0
end

-- Read the index from the values of 'j' and 'k'. False if what is there
-- cannot be read (the caller rebuilds it from the records).
local function indexLoad(j, k)
  idxHas.j, idxHas.k = j ~= nil, k ~= nil
  if k then
    local n, nl = tonumber(sub(k, ID_LEN + 1, ID_LEN + COUNT_LEN)), tonumber(sub(k, ID_LEN + COUNT_LEN + 1, HEADER_LEN))
    nextID = tonumber(sub(k, 1, ID_LEN))
    if not n or not nl or not nextID or j then return false end
    local xs = HEADER_LEN + nl * byLogin.dw
    if #k < xs or (#k - xs) % byExpiry.dw ~= 0 then return false end
    byLogin.dir, byExpiry.dir, idxN, idxMode = sub(k, HEADER_LEN + 1, xs), sub(k, xs + 1), n, 'k'
    byLogin.one, byExpiry.one, idxLarge = nil, nil, true
    return true
  end
  if not j then return true end
  local w = L_ENTRY_LEN + X_ENTRY_LEN
  if #j == 0 or #j % w ~= 0 then return false end
  local n = #j / w
  if n > BLOCK_MAX then return false end
  byLogin.one, byExpiry.one = sub(j, 1, n * L_ENTRY_LEN), sub(j, n * L_ENTRY_LEN + 1)
  idxN, idxMode = n, 'j'
  return true
end

-- How many fields of the hash the index accounts for ('j' or 'k', and the
-- blocks).
local function indexFields()
  if idxMode == 'j' then return 1 end
  if idxMode == 'k' then return 1 + dirLen(byLogin) + dirLen(byExpiry) end
  return 0
end

-- Forget the index as read (rebuild() then adds what the records hold);
-- the blocks it had are left to the caller to remove.
local function indexReset()
  for _, o in ipairs(orders) do
    o.one, o.dir, o.blocks, o.dirty, o.removed = '', '', {}, {}, {}
  end
  idxN, nextID, idxMode, idxDirty = 0, 0, '', true
end

-- Queue the index's writes (and the removal of fields it no longer uses),
-- if it changed. Only the blocks this call changed are written.
local function indexSave()
  if not idxDirty then return end
  local large = idxN > SMALL_MAX or (idxMode == 'k' and idxN > SMALL_MIN)
  if idxLarge then
    for n = 1, 2 do
      for id in pairs(orders[n].removed) do dead[#dead + 1] = BLOCK_PREFIX .. id end
    end
  end
  if large then
    for n = 1, 2 do
      local o = orders[n]
      unfold(o)
      for id, b in pairs(o.blocks) do
        if o.dirty[id] then
          writes[#writes + 1] = BLOCK_PREFIX .. id
          writes[#writes + 1] = b
        end
      end
    end
    writes[#writes + 1] = 'k'
    writes[#writes + 1] = string.format(ID_FORMAT .. COUNT_FORMAT .. DIR_COUNT_FORMAT, nextID, idxN,
      dirLen(byLogin)) .. byLogin.dir .. byExpiry.dir
    if idxHas.j then dead[#dead + 1] = 'j' end
    return
  end
  -- Small, or none: the blocks a large index had go. Both orders are
  -- usually one string each already.
  local j = byLogin.one and byExpiry.one and byLogin.one .. byExpiry.one
  if not j then
    local parts = {}
    for n = 1, 2 do
      local o = orders[n]
      for i = 1, dirLen(o) do
        parts[#parts + 1] = block(o, i)
        if not o.one then dead[#dead + 1] = BLOCK_PREFIX .. dirID(o, i) end
      end
    end
    j = table.concat(parts)
  end
  if idxN > 0 then
    writes[#writes + 1] = 'j'
    writes[#writes + 1] = j
  elseif idxHas.j then
    dead[#dead + 1] = 'j'
  end
  if idxHas.k then dead[#dead + 1] = 'k' end
end
