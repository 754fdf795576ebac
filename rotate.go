package sessioncap

import (
	"context"
)

// Rotate gives the session behind token a new token and kills the old one at
// once, in one round trip. Call it on privilege change or re-authentication,
// so a token captured before cannot ride the upgrade.
func (e *Engine) Rotate(ctx context.Context, token string) (rotated string, err error) {
	ctx, call := e.begin(ctx, OpRotate)
	defer func() { call.end(err, 0) }()
	t, err := parseToken(token)
	if err != nil {
		return "", err
	}
	fresh, err := newToken(t.user)
	if err != nil {
		return "", err
	}
	fresh.sid = t.sid
	k := keysFor(e.cfg.KeyPrefix, t.user)
	reply, err := e.run(ctx, OpRotate, scriptRotate, k,
		e.args(e.nowMS(ctx), k, string(t.sid[:]), t.secretDigest(), fresh.secretDigest()))
	if err != nil {
		return "", err
	}
	if status(reply) != statusOK {
		return "", e.ended(ctx, OpRotate, reply, t.sid)
	}
	return fresh.String(), nil
}
