package torture

import (
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer"
)

// The simulator here hides a new appliance for at most a few milliseconds
// (world knobs.notFound), where SAKURA's API may take seconds: the
// controller's wait for an appliance that a failed create may have made is
// shortened to match, well above the window and far below the settle bound.
func init() { loadbalancer.CreateVisibilityGrace = 500 * time.Millisecond }
