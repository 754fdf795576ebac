-- The names the scripts share with the Go engine, prepended to every script
-- (validate included) at compile time. Each constant has a Go twin of the
-- same meaning, and protocol_test.go fails if the two ever disagree.
--
-- Reply statuses: the first item of a script's array reply.
local STATUS_FULL = -1    -- login at the cap under RejectNew: {STATUS_FULL, sid, record, ...}
local STATUS_NONE = 0     -- no such live session, or not this token's
local STATUS_OK = 1       -- done: {STATUS_OK, results...}
local STATUS_ENDED = 2    -- this token's session had ended: {STATUS_ENDED, tombstone}
local STATUS_EXPIRED = 3  -- validate: the session timed out
local STATUS_CONFLICT = 4 -- save: the values changed since they were read
local STATUS_CEILING = 5  -- login: the user holds the most sessions anyone may
-- The first byte of a record says what it is: a live session, or the event
-- code of the ending that left a tombstone. History entries start with
-- their code too. Go passes the codes that vary by caller in ARGV.
local KIND_LIVE = 50 -- '2' (live, format 2), compared as a byte
local CODE_EVICTED = 'E'
local CODE_LOGOUT = 'O'
local CODE_REVOKED = 'V'
local CODE_ROTATED = 'T'
local CODE_EXPIRED = 'X'
local CODE_REPLACED = 'R'
-- Record fields (see record.go), 1-based and inclusive where Go's offsets
-- are 0-based and half open.
local DIGEST_FROM, DIGEST_TO = 2, 17   -- secret digest
local CREATED_FROM, CREATED_TO = 18, 30 -- created, 13-digit ms
local LAST_FROM, LAST_TO = 31, 43      -- last seen
local ABS_FROM, ABS_TO = 44, 56        -- absolute expiry
local IDLE_FROM, IDLE_TO = 57, 69      -- idle timeout when written, ms (0 none)
local METALEN_FROM, METALEN_TO = 70, 73 -- meta length, 4 digits
local META_FROM = 74                   -- meta, then the values
-- Timestamps are 13-digit ms; an index entry (see keys.go) is a session ID
-- and the session's expiry.
local TS_FORMAT, TS_LEN = '%013d', 13
-- A tombstone tail (what follows the code and the secret digest): when the
-- session ended, the acting session's ID (or zeros), then who acted.
local TAIL_BY_FROM, TAIL_BY_TO = 14, 29
local TAIL_ACTOR_FROM = 30
local SID_LEN = 16
local ENTRY_LEN = 29      -- an X or tombstone index entry: expiry and ID, or ID and expiry
-- The live index (index.lua): entry widths, block sizes, and the widths
-- of the numbers in its header and directories.
local SEQ_LEN, SEQ_FORMAT = 10, '%010d' -- a sign-in's number
local L_ENTRY_LEN = 26        -- seq .. ID
local X_ENTRY_LEN = 39        -- expiry .. seq .. ID
local BLOCK_MAX = 64          -- entries per block at most (more: cut in two)
local TAIL_MAX = 16           -- a large order's last block is cut back past this many
local SMALL_MAX = 32          -- sessions a small index holds at most
local SMALL_MIN = 16          -- a large index turns small again at this many
local BLOCK_PREFIX = 'b'      -- a block's field is this and its ID
local ID_LEN, ID_FORMAT = 8, '%08d'
local COUNT_LEN, COUNT_FORMAT = 6, '%06d'
local DIR_COUNT_LEN, DIR_COUNT_FORMAT = 4, '%04d'
local HEADER_LEN = 18         -- ID_LEN + COUNT_LEN + DIR_COUNT_LEN
