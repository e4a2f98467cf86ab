package decide

import (
	"testing"
	"time"

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
		if got := StateOf(c.lb, time.Time{}, time.Now()); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// The race an end-to-end test found: the controller booted a stopped
// appliance; the API shows it down and available while it boots, and the
// next sync took it for stopped and booted it again, restarting the boot
// on every sync so it never came up.
func TestStateOfAfterOurBoot(t *testing.T) {
	now := time.Now()
	down := &iaas.LoadBalancer{Availability: types.Availabilities.Available, InstanceStatus: types.ServerInstanceStatuses.Down}
	for _, c := range []struct {
		name string
		sent time.Time
		want State
	}{
		{"booted 10 s ago, still down: booting", now.Add(-10 * time.Second), Booting},
		{"booted long ago, down again: stopped again", now.Add(-BootGrace - time.Second), Stopped},
		{"never booted by us: stopped", time.Time{}, Stopped},
	} {
		if got := StateOf(down, c.sent, now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestStateOfELB(t *testing.T) {
	for _, c := range []struct {
		elb  *iaas.ProxyLB
		want State
	}{
		{nil, Missing},
		{&iaas.ProxyLB{Availability: types.Availabilities.Available}, Up},
		{&iaas.ProxyLB{Availability: types.Availabilities.Failed}, Failed},
		{&iaas.ProxyLB{Availability: types.Availabilities.Migrating}, Booting},
		{&iaas.ProxyLB{}, Booting},
	} {
		if got := StateOfELB(c.elb); got != c.want {
			t.Errorf("StateOfELB(%+v) = %v, want %v", c.elb, got, c.want)
		}
	}
}
