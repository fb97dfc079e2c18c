package chaos

import (
	"flag"
	"os"
	"strconv"
	"time"
)

var (
	seedFlag     = flag.Int64("chaos.seed", 0, "seed of the chaos schedule to replay (0: a new one, printed at start)")
	durationFlag = flag.Duration("chaos.duration", 20*time.Second, "how long a chaos schedule runs its workload and faults")
)

// SeedEnv names the environment variable that gives the seed when
// -chaos.seed is not set: the test script fixes it for CI, so a CI run
// replays a known schedule, while local and long runs take new ones.
const SeedEnv = "TROUPE_CHAOS_SEED"

// FlagSeed returns -chaos.seed, else $TROUPE_CHAOS_SEED, else 0 (Run then
// picks one).
func FlagSeed() int64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	if v, err := strconv.ParseInt(os.Getenv(SeedEnv), 10, 64); err == nil {
		return v
	}
	return 0
}

// FlagDuration returns -chaos.duration.
func FlagDuration() time.Duration { return *durationFlag }
