package sessioncap

import "github.com/google/uuid"

var zeroSID [sidLen]byte

// publicID renders a raw session ID as its public UUID form.
func publicID(sid [sidLen]byte) string {
	if sid == zeroSID {
		return ""
	}
	return uuid.UUID(sid).String()
}

// appendPublicID appends publicID(sid) for a non-zero sid: the canonical
// lower-case UUID form, without the allocation of uuid.UUID.String.
func appendPublicID(b []byte, sid [sidLen]byte) []byte {
	const hexd = "0123456789abcdef"
	for i, c := range sid {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexd[c>>4], hexd[c&15])
	}
	return b
}

func parsePublicID(s string) ([sidLen]byte, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return zeroSID, ErrInvalidSessionID
	}
	return u, nil
}
