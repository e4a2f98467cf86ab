package torture

import (
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
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

// The simulator here boots an appliance in 2-8 ms (world knobs.bootDelay),
// where SAKURA's takes minutes: the time after its own Boot during which the
// controller takes a down appliance for one still booting is shortened to
// match, keeping it far above the boot (about 100 times) and far below the
// settle bound. This too is compression, not an excuse: an appliance shut
// down out of band between the controller's Boot and its first look at it
// up reads like one still booting (decide.BootGrace says why), and the
// checks still require it to be running when the settle phase ends, so a
// controller that never boots it again fails as before (seed 112947 did,
// with the five-minute grace of real time).
func init() { decide.BootGrace = time.Second }
