-- Sessions: one page of the live sessions, newest first, healing the index
-- on the way: an entry without a live record is dropped.
local after = ARGV[9]           -- the last entry (seq .. ID) of the previous page, or '' for the newest
local size = tonumber(ARGV[10]) -- sessions per page at most
-- Reply: {STATUS_OK, the last entry of this page if older ones remain
-- (else ''), sid, record, ...}
load()
local entries, more = indexNewest(after, size)
local ids = {}
for i = 1, #entries do ids[i] = sub(entries[i], SEQ_LEN + 1) end
local recs = records(ids)
local out = {STATUS_OK, ''}
for i = 1, #ids do
  local r = recs[i]
  if r and string.byte(r, 1) == KIND_LIVE then
    out[#out + 1] = ids[i]
    out[#out + 1] = r
  else
    indexDrop(ids[i], '')
  end
end
if more then out[2] = entries[#entries] end
done(true)
return out
