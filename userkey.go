package sessioncap

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
)

// MinUserKeyLen is the shortest Config.UserKey New accepts: 16 bytes, 128
// bits, the digest's own length. Draw it from a CSPRNG; 32 bytes is usual.
const MinUserKeyLen = 16

// userKeyer computes the keyed user digest D = HMAC-SHA256(key, userID)[:16]
// (see Config.UserKey). hmac.New costs four allocations and two SHA-256
// block compressions of the padded key per call, so each pooled keyedMAC
// keeps an HMAC whose Reset restores its precomputed inner and outer
// states: a digest then costs no allocation once the pool is warm.
type userKeyer struct {
	pool sync.Pool // of *keyedMAC
}

type keyedMAC struct {
	h   hash.Hash
	in  []byte // the user ID, copied: Write takes a []byte
	sum [sha256.Size]byte
}

func newUserKeyer(key []byte) *userKeyer {
	key = append([]byte(nil), key...) // the caller may reuse its slice
	k := &userKeyer{}
	k.pool.New = func() any { return &keyedMAC{h: hmac.New(sha256.New, key)} }
	return k
}

func (k *userKeyer) digest(userID string) [digestLen]byte {
	m := k.pool.Get().(*keyedMAC)
	m.h.Reset()
	m.in = append(m.in[:0], userID...)
	m.h.Write(m.in)
	m.h.Sum(m.sum[:0])
	var d [digestLen]byte
	copy(d[:], m.sum[:digestLen])
	if cap(m.in) > 1024 {
		m.in = nil // a rare long user ID is not kept alive by the pool
	}
	k.pool.Put(m)
	return d
}

// digest is the per-user part of every key and of every token: the
// unkeyed userDigest, or its keyed form when Config.UserKey is set.
func (e *Engine) digest(userID string) [digestLen]byte {
	if e.userKey == nil {
		return userDigest(userID)
	}
	return e.userKey.digest(userID)
}

// keysOf names the keys of a user.
func (e *Engine) keysOf(userID string) userKeys {
	return keysFor(e.cfg.KeyPrefix, e.digest(userID))
}

// ownDigest reports whether d, the digest a token carries, is this
// engine's digest of the user ID stored in the session's record. Validate
// checks it, so that setting, changing or removing Config.UserKey signs
// out every session made under the previous one. Without the check such a
// session would keep validating until it timed out while Login, Sessions,
// Revoke and LogoutAll, which compute D from the user ID, no longer reach
// it: outside the cap and beyond an admin's logout. It costs one SHA-256
// (or one HMAC from the pool) of the user ID and no allocation.
func (e *Engine) ownDigest(d [digestLen]byte, userID string) bool {
	return e.digest(userID) == d
}
