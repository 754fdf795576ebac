package sessioncap

import "context"

// Unlimited, as a session limit, lifts the cap: the user may hold any number
// of live sessions. Use it in Config.MaxSessions or return it from a Limiter.
const Unlimited = -1

// Limiter decides how many live sessions a user may hold. It is consulted
// once per Login, before the login script runs, so it must be fast: read the
// user's plan or role from memory or from the request you already loaded, not
// from a database round trip per login if you can avoid it.
//
// Limit returns a number of sessions (1 or more), Unlimited, or 0 to fall
// back to Config.MaxSessions. An error aborts the login and is returned to
// the caller wrapped.
type Limiter interface {
	Limit(ctx context.Context, userID string) (int, error)
}

// LimitFunc adapts a function to the Limiter interface.
type LimitFunc func(ctx context.Context, userID string) (int, error)

// Limit calls f.
func (f LimitFunc) Limit(ctx context.Context, userID string) (int, error) { return f(ctx, userID) }

// PlanLimits returns a Limiter for the common "plans with 1 / 2 / 4 screens"
// case: plan maps a user to a plan name, and limits maps plan names to
// limits. A plan missing from limits falls back to Config.MaxSessions.
//
//	sessioncap.PlanLimits(planOf, map[string]int{
//		"basic": 1, "standard": 2, "premium": 4, "admin": sessioncap.Unlimited,
//	})
func PlanLimits(plan func(ctx context.Context, userID string) (string, error), limits map[string]int) Limiter {
	// Copy so that later changes to the caller's map cannot race with logins.
	own := make(map[string]int, len(limits))
	for k, v := range limits {
		own[k] = v
	}
	return LimitFunc(func(ctx context.Context, userID string) (int, error) {
		p, err := plan(ctx, userID)
		if err != nil {
			return 0, err
		}
		return own[p], nil
	})
}
