package chaos

import (
	"flag"
	"time"
)

var (
	seedFlag     = flag.Int64("chaos.seed", 0, "seed of the chaos schedule to replay (0: a new one, printed at start)")
	durationFlag = flag.Duration("chaos.duration", 20*time.Second, "how long a chaos schedule runs its workload and faults")
)

// FlagSeed returns -chaos.seed (0 when not given: Run then picks one).
func FlagSeed() int64 { return *seedFlag }

// FlagDuration returns -chaos.duration.
func FlagDuration() time.Duration { return *durationFlag }
