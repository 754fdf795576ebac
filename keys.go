package sessioncap

import (
	"crypto/sha256"
	"encoding/base64"
)

// Key layout
//
// Every key of one user shares the hash tag {D}, where D is the unpadded
// base64url form of the first 16 bytes of SHA-256(user ID), or of
// HMAC-SHA256(Config.UserKey, user ID) when that is set (userkey.go). So:
//
//   - the tag never contains '{' or '}' whatever the user ID holds (braces,
//     colons, spaces, NUL bytes, invalid UTF-8, 1 KB of text), so it cannot
//     break the tag or collide with another user's layout short of a 128-bit
//     hash collision; the user ID itself is stored inside the records and
//     checked, never parsed out of a key;
//
//   - every key a script touches hashes to the user's one slot, so each
//     script runs unchanged on Redis Cluster;
//
//   - the token can name the user's keys (it carries D) without carrying the
//     user ID.
//
//     <prefix>:{D}:d   HASH  everything about the user's sessions:
//     session ID (16 raw bytes) -> record (live or ended)
//     "j" -> live index of up to 32 sessions: sign-in order, then expiry order
//     "k" -> live index beyond that: header and the two orders' directories
//     "b<8 digits>" -> a block of one of those orders (64 entries at most)
//     "t" -> tombstone index: ID + expiry, oldest first
//     "c" -> the running count of the last chunked LogoutAll
//     <prefix>:{D}:h   LIST  history records, newest first
//     <prefix>:{D}:e         Pub/Sub channel for live events (not a key)
//
// One key for all of a user's sessions, rather than a key per session or
// a sorted set beside the hash: Redis can evict or expire all of a user or
// nothing, so a lost index can never mean "no limit"; a login reads what
// it needs with one HMGET and writes back with one HSET; a user costs one
// key's overhead; and the key's TTL (the later of its last live session
// and its newest tombstone) makes it vanish by itself. The live index is
// cut into blocks (lua/index.lua) so that no call reads or rewrites more
// than a few of them, whatever the user's number of sessions. If the index
// is missing or damaged while records exist, the next call rebuilds it
// from the records.
const digestLen = 16

// userKeys names every key and channel of one user.
type userKeys struct {
	data, hist, channel string
}

// list returns the KEYS of every script but validate, always in this
// order: data, history.
func (k userKeys) list() []string { return []string{k.data, k.hist} }

// userDigest is the unkeyed per-user part of every key and of every token;
// Engine.digest uses it unless Config.UserKey is set.
func userDigest(userID string) [digestLen]byte {
	sum := sha256.Sum256([]byte(userID))
	var d [digestLen]byte
	copy(d[:], sum[:digestLen])
	return d
}

// keysFor builds the layout from a user digest. The digest, not the user ID,
// is what a token carries, so Validate can name the keys from the token alone.
func keysFor(prefix string, d [digestLen]byte) userKeys {
	var b [keysBufLen]byte
	k, _ := keysIn(string(appendKeys(b[:0], prefix, d)), prefix)
	return k
}

// keysBufLen fits every key name of a user for the longest KeyPrefix, so
// the names are built on the stack.
const keysBufLen = 3 * (64 + keyTagLen + 1)

// keyTagLen is the length of ":{D}:" around the user digest: four bytes
// and the unpadded base64 of digestLen bytes.
const keyTagLen = 4 + (digestLen*8+5)/6

// appendKeys appends the three names of keysFor back to back, so one string
// conversion allocates them all: this is on the path of every Validate.
func appendKeys(b []byte, prefix string, d [digestLen]byte) []byte {
	start := len(b)
	b = append(b, prefix...)
	b = append(b, ":{"...)
	b = base64.RawURLEncoding.AppendEncode(b, d[:])
	b = append(b, "}:d"...)
	tag := b[start : len(b)-1]
	for _, c := range []byte("he") {
		b = append(b, tag...)
		b = append(b, c)
	}
	return b
}

// keysIn slices the names appendKeys wrote at the start of s, and returns
// the rest of s.
func keysIn(s, prefix string) (userKeys, string) {
	n := len(prefix) + keyTagLen + 1
	k := userKeys{data: s[:n], hist: s[n : 2*n], channel: s[2*n : 3*n]}
	return k, s[3*n:]
}
