package torture

import (
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/engine"
)

// The simulator here hides a new appliance for at most a few tens of
// milliseconds (world knobs.notFound, the defect actor's unlistedWindow),
// where SAKURA's API may take seconds: the controller's wait for an
// appliance that a failed create may have made is shortened to match. This
// is time compression, not an excuse: it keeps the relation the product
// assumes of the real cloud (the grace well above the invisible window) and
// stays far below the settle bound. What it does not cover, a controller
// that never knew of the create (a restart, a new leader), the take-overs
// and the defect actor's restart-unlisted play without waiting.
func init() { engine.CreateVisibilityGrace = 500 * time.Millisecond }
