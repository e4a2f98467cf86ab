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

// ReadResult is how a read by an ID came back.
type ReadResult int

const (
	ReadOK       ReadResult = iota
	ReadNotFound            // 404: gone, or just made and not readable yet
	ReadFailed              // any other error
)

// IDRead is what a read by a recorded or just-made ID means for the
// locator.
type IDRead int

const (
	// IDFound: the Service's load balancer.
	IDFound IDRead = iota
	// IDIgnore: not the Service's (or gone) and not this process's create:
	// look further.
	IDIgnore
	// IDRelease: this process's create is not the Service's after all, or
	// gone for good: forget it, so a new create may go ahead.
	IDRelease
	// IDPending: this process's create, young and not readable yet: wait.
	// Answering "none" here made a second ELB (adapter test seeds 3, 41,
	// 52, 55 with the simulator's read-not-found window).
	IDPending
	// IDError: the read failed; nothing can be decided.
	IDError
)

// ReadOfID decides on one read by ID: owned says the answer carries the
// Service's tags, mine that the ID is this process's own create, young
// that the create is within its visibility grace.
func ReadOfID(r ReadResult, owned, mine, young bool) IDRead {
	switch {
	case r == ReadOK && owned:
		return IDFound
	case r == ReadFailed:
		return IDError
	case !mine:
		return IDIgnore
	case r == ReadOK || !young:
		return IDRelease
	}
	return IDPending
}

// ClearShownAddress says whether the repair pass clears the address a
// Service's status shows after its reconcile was refused: the Service has
// no appliance (the listing shows none), the refusal is of the address it
// pins, and it shows another address. That address belonged to an
// appliance that is gone, and the Service no longer asks for it; showing
// it would tell clients an address nothing serves, and keep it from other
// Services for good (torture seed 900043: a sharing-key member whose
// appliance was deleted out of band, then pinned to its partner's VIP).
func ClearShownAddress(hasAppliance, pinRefused bool, shown, pinned string) bool {
	return !hasAppliance && pinRefused && shown != "" && shown != pinned
}
