package decide

import (
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

func TestStateOf(t *testing.T) {
	lb := func(a types.EAvailability, s types.EServerInstanceStatus) *iaas.LoadBalancer {
		return &iaas.LoadBalancer{Availability: a, InstanceStatus: s}
	}
	av, mig, failed := types.Availabilities.Available, types.Availabilities.Migrating, types.Availabilities.Failed
	up, down := types.ServerInstanceStatuses.Up, types.ServerInstanceStatuses.Down
	for _, c := range []struct {
		name string
		lb   *iaas.LoadBalancer
		want State
	}{
		{"none", nil, Missing},
		{"running", lb(av, up), Up},
		{"being created", lb(mig, down), Booting},
		{"booting after create", lb(mig, up), Booting},
		{"shutting down", lb(av, types.ServerInstanceStatuses.Cleaning), Booting},
		// Powered off outside the controller: not "still booting", which
		// had the controller wait for it forever.
		{"powered off", lb(av, down), Stopped},
		{"failed", lb(failed, down), Failed},
	} {
		if got := StateOf(c.lb); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
