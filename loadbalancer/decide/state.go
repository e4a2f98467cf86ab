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
const BootGrace = 5 * time.Minute

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
