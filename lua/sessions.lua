-- Sessions: one page of the live sessions, newest first, healing the index
-- on the way: an entry without a live record is dropped.
local after = ARGV[9]           -- the last session of the previous page, or '' for the newest
local seen = tonumber(ARGV[10]) -- sessions listed so far, to resume if that one has gone
local size = tonumber(ARGV[11]) -- sessions per page at most
-- Reply: {STATUS_OK, the next page's cursor ('' at the end), sid, record, ...}
load()
local n = liveCount()
local from = n -- the sign-in position to start at, counting down
if after ~= '' then
  local p = findEntry(L, after, SID_LEN, 0)
  if p then
    from = (p - 1) / SID_LEN
  else
    -- It ended since: resume where it was, assuming it is the only one of
    -- the listed sessions that did (if more did, one older session is
    -- skipped; if an older one did, one is listed twice).
    from = math.min(n, n - seen + 1)
  end
end
local ids = {}
for i = from, math.max(1, from - size + 1), -1 do ids[#ids + 1] = liveAt(i) end
local recs = records(ids)
local out = {STATUS_OK, ''}
for i = 1, #ids do
  local r = recs[i]
  if r and string.byte(r, 1) == KIND_LIVE then
    out[#out + 1] = ids[i]
    out[#out + 1] = r
  else
    indexDrop(ids[i])
  end
end
if from - size >= 1 and #ids > 0 then out[2] = ids[#ids] end
done(true)
return out
