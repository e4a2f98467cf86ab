package decide

import "github.com/sacloud/iaas-api-go"

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

// StateOf classifies lb (nil: Missing).
func StateOf(lb *iaas.LoadBalancer) State {
	switch {
	case lb == nil:
		return Missing
	case lb.Availability.IsFailed():
		return Failed
	case lb.InstanceStatus.IsUp() && lb.Availability.IsAvailable():
		return Up
	case lb.InstanceStatus.IsDown() && lb.Availability.IsAvailable():
		return Stopped
	}
	return Booting
}
