//go:build race

package sessioncap

// raceEnabled: the race detector changes allocation counts (sync.Pool drops
// items on purpose), so allocation pins only log under -race.
const raceEnabled = true
