//go:build race

package loopback

// raceEnabled builds the agents with -race too when the tests run with -race.
const raceEnabled = true
