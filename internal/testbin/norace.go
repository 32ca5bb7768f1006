//go:build linux && !race

package testbin

import "time"

const raceEnabled = false

const slack = time.Second
