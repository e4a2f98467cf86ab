package decide

import (
	"time"

	"github.com/sacloud/iaas-api-go"
)

// State is where an appliance stands, for what the controller may do next.
type State int

const (
	// Missing: no appliance (or none listed yet).
	Missing State = iota
	// Failed: SAKURA failed to create it; it needs a person.
	Failed
	// Booting: being created, booted or otherwise in transition; wait.
	Booting
	// Stopped: powered off and stable. The controller never leaves one of
	// its live Services' appliances off: whoever stopped it did so outside
	// the controller (deletion holds the Service's lock while it waits).
	Stopped
	// Up: running and available.
	Up
)

// BootGrace is how long after the controller sent a Boot an appliance that
// still reads "down" counts as booting: the API shows a booting appliance as
// down and available, and booting it again restarts (or refuses) the boot.
//
// It is also the bound on one gap: an appliance shut down outside the
// controller after its Boot was sent and before it was seen up reads just
// like one still booting, so it is booted again only once the grace has
// passed. Nothing the API shows is known to tell the two apart (whether a
// Boot moves the appliance's status-changed time while it still reads down
// is not documented, and guessing wrong would restart every boot).
//
// A variable only so that tests on a compressed clock can shorten it, as
// they shorten the appliances' boot (e2e/torture/grace_test.go); the product
// never changes it.
var BootGrace = 5 * time.Minute

// StateOf classifies lb (nil: Missing). bootSent is when this controller
// last sent lb a Boot (zero: never), now the clock.
func StateOf(lb *iaas.LoadBalancer, bootSent, now time.Time) State {
	switch {
	case lb == nil:
		return Missing
	case lb.Availability.IsFailed():
		return Failed
	case lb.InstanceStatus.IsUp() && lb.Availability.IsAvailable():
		return Up
	case lb.InstanceStatus.IsDown() && lb.Availability.IsAvailable():
		if !bootSent.IsZero() && now.Sub(bootSent) < BootGrace {
			return Booting
		}
		return Stopped
	}
	return Booting
}

// StateOfELB classifies an Enhanced Load Balancer (nil: Missing). It has
// no power state: it serves once available, and a failed one needs a
// person as a failed appliance does.
func StateOfELB(elb *iaas.ProxyLB) State {
	switch {
	case elb == nil:
		return Missing
	case elb.Availability.IsFailed():
		return Failed
	case elb.Availability.IsAvailable():
		return Up
	}
	return Booting
}
