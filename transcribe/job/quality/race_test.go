//go:build race

package quality

// raceEnabled: built with -race, which slows the real-time publisher and
// recorder several times over.
const raceEnabled = true
