// Package memlimit derives the Go runtime's soft memory limit from the
// container's memory limit, which the helm chart passes in MEMORY_LIMIT_MIB
// (downward API: resourceFieldRef limits.memory, divisor 1Mi).
//
// The soft limit makes the garbage collector work harder as the heap nears
// it, instead of letting the heap grow to twice the live data (GOGC=100)
// and the container reach its limit and be killed. It counts only what the
// Go runtime maps (heap, stacks, runtime metadata). The container's limit
// also counts the executable's file-backed pages the process has touched
// (most of the 75 MiB static binary) and kernel socket buffers, so the soft
// limit leaves them Percent's complement: 70% of the chart's 256Mi is
// 179 MiB, and the 77 MiB left hold the whole binary. docs/memory.md.
package memlimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

const (
	// EnvLimitMiB is the container's memory limit in MiB.
	EnvLimitMiB = "MEMORY_LIMIT_MIB"
	// EnvGoMemLimit is the Go runtime's own setting; when set, it wins.
	EnvGoMemLimit = "GOMEMLIMIT"
	// Percent of the container's memory limit the Go runtime may use.
	Percent = 70
)

// Decision says what soft limit to set.
type Decision struct {
	// Bytes is the soft limit to set (debug.SetMemoryLimit); 0 leaves the
	// runtime's own setting (GOMEMLIMIT, or none).
	Bytes int64
	// ContainerMiB is the container's limit it was derived from.
	ContainerMiB int64
	// Why explains a Bytes of 0.
	Why string
}

// Decide reads GOMEMLIMIT and MEMORY_LIMIT_MIB through getenv
// (os.LookupEnv) and returns the soft limit to set, or an error for a
// MEMORY_LIMIT_MIB that is not a positive whole number of MiB.
func Decide(getenv func(string) (string, bool)) (Decision, error) {
	if v, _ := getenv(EnvGoMemLimit); v != "" {
		// The runtime applied it at start-up (an empty value means unset
		// to the runtime too).
		return Decision{Why: EnvGoMemLimit + " is set"}, nil
	}
	raw, _ := getenv(EnvLimitMiB)
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Decision{Why: EnvLimitMiB + " is not set"}, nil
	}
	mib, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || mib <= 0 {
		return Decision{}, fmt.Errorf("%s=%q is not a positive whole number of MiB", EnvLimitMiB, raw)
	}
	if mib > math.MaxInt64/(1<<20)/100 {
		return Decision{}, fmt.Errorf("%s=%q is too large", EnvLimitMiB, raw)
	}
	return Decision{Bytes: (mib << 20) * Percent / 100, ContainerMiB: mib}, nil
}
