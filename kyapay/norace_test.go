//go:build !race

package kyapay

const raceEnabled = false
