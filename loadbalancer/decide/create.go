package decide

import (
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
)

// CreateWait is how long a create for a Service whose appliance no listing
// and no read shows must still wait, given the create record on the
// Service (has: there is one). A record younger than grace is a create
// that may have made an appliance listings do not show yet (sent by this
// process or by one before a restart or a leader change): creating again
// then would make a second appliance with the same addresses (issue #18,
// defect 5). 0: create now.
func CreateWait(rec annotations.CreateRecord, has bool, now time.Time, grace time.Duration) time.Duration {
	if !has {
		return 0
	}
	if left := rec.At.Add(graceOf(rec, grace)).Sub(now); left > 0 {
		return left
	}
	return 0
}

// InFlight reports whether rec still holds its addresses: younger than the
// grace, after which its appliance is listed (and its addresses come from
// the listing) or was never made.
func InFlight(rec annotations.CreateRecord, now time.Time, grace time.Duration) bool {
	return now.Sub(rec.At) < graceOf(rec, grace)
}

func graceOf(rec annotations.CreateRecord, grace time.Duration) time.Duration {
	if g := time.Duration(rec.GraceSec) * time.Second; g > 0 && g < grace {
		return g
	}
	return grace
}
