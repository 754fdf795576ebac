package sessioncap

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/google/uuid"
)

const (
	secretLen    = 32
	tokenVersion = 1
	tokenRawLen  = 1 + digestLen + sidLen + secretLen
)

// tokenLen is the length of every token string: 87 characters.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenRawLen)

// token is a parsed bearer token.
type token struct {
	user   [digestLen]byte
	sid    [sidLen]byte
	secret [secretLen]byte
}

// newToken draws a session ID and a secret from crypto/rand.
func newToken(user [digestLen]byte) (token, error) {
	t := token{user: user}
	id, err := uuid.NewRandom() // version 4, from crypto/rand
	if err != nil {
		return t, fmt.Errorf("sessioncap: random source: %w", err)
	}
	t.sid = id
	if _, err := rand.Read(t.secret[:]); err != nil {
		return t, fmt.Errorf("sessioncap: random source: %w", err)
	}
	return t, nil
}

func (t token) String() string {
	var raw [tokenRawLen]byte
	raw[0] = tokenVersion
	copy(raw[1:], t.user[:])
	copy(raw[1+digestLen:], t.sid[:])
	copy(raw[1+digestLen+sidLen:], t.secret[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// secretDigest is what Redis stores in place of the secret.
func (t token) secretDigest() string {
	sum := sha256.Sum256(t.secret[:])
	return string(sum[:digestLen])
}

var strictB64 = base64.RawURLEncoding.Strict()

// parseToken rejects anything that is not exactly a token this package
// issued, before any Redis call.
func parseToken(s string) (token, error) {
	var t token
	if len(s) != tokenLen {
		return t, ErrInvalidToken
	}
	var raw [tokenRawLen]byte
	// Decode from a stack copy: []byte(s) would allocate on every Validate.
	var in [128]byte
	n, err := strictB64.Decode(raw[:], in[:copy(in[:], s)])
	if err != nil || n != tokenRawLen || raw[0] != tokenVersion {
		return t, ErrInvalidToken
	}
	copy(t.user[:], raw[1:])
	copy(t.sid[:], raw[1+digestLen:])
	copy(t.secret[:], raw[1+digestLen+sidLen:])
	return t, nil
}
