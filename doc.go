// Package sessioncap is a Redis session engine that caps how many live
// sessions each user may hold.
//
// Sign-in is one atomic Lua script and one round trip: it adds the new
// session, drops the user's expired ones and evicts all but the newest N, so
// no race between simultaneous sign-ins can leave a user above the cap.
// Validation is one round trip too, and an evicted device learns why: when,
// and which sign-in replaced it.
//
// Every key of a user shares one hash slot, so the same code runs on a single
// Redis, behind Sentinel, and on Redis Cluster through redis.UniversalClient.
package sessioncap
