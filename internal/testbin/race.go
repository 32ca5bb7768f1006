//go:build linux && race

package testbin

import "time"

const raceEnabled = true

const slack = 3 * time.Second
