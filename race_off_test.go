//go:build !race

package sessioncap

// raceEnabled: see race_on_test.go.
const raceEnabled = false
