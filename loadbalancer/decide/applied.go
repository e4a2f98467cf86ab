package decide

import (
	"fmt"
	"slices"

	"github.com/sacloud/iaas-api-go"
)

// Unapplied reports whether the appliance's saved settings differ from the
// configuration it runs, as its Status shows it: each VIP:port with its real
// servers. A Config that failed after its settings were saved leaves such a
// gap, and comparing saved settings with the wanted ones can never see it
// (they agree); this comparison can, after a restart too.
func Unapplied(saved iaas.LoadBalancerVirtualIPAddresses, running []*iaas.LoadBalancerStatus) bool {
	return !slices.Equal(entriesOfSettings(saved), entriesOfStatus(running))
}

// MarkUnapplied decides whether a settings write from have to want must
// mark the appliance as "saved, not applied" in the cloud until its Config
// is confirmed. Unmarked, a restart between the write and the Config
// leaves the change saved and never applied, unless the health poll
// (polled: on) will see it: it compares each VIP:port and its real servers
// in Status with the saved settings, so a change of those shows there. A
// change of anything else (health check, delay loop, sorry server) does not.
// Real-server changes, the frequent ones, thus cost no extra write.
func MarkUnapplied(have, want iaas.LoadBalancerVirtualIPAddresses, polled bool) bool {
	return !polled || slices.Equal(entriesOfSettings(have), entriesOfSettings(want))
}

// entriesOfSettings and entriesOfStatus list "vip:port" and
// "vip:port/server" for each entry, sorted, so the two can be compared.
func entriesOfSettings(v iaas.LoadBalancerVirtualIPAddresses) []string {
	return entries(v, func(e *iaas.LoadBalancerVirtualIPAddress) (string, int, []string) {
		var ips []string
		for _, s := range e.Servers {
			if s != nil {
				ips = append(ips, s.IPAddress)
			}
		}
		return e.VirtualIPAddress, e.Port.Int(), ips
	})
}

func entriesOfStatus(v []*iaas.LoadBalancerStatus) []string {
	return entries(v, func(e *iaas.LoadBalancerStatus) (string, int, []string) {
		var ips []string
		for _, s := range e.Servers {
			if s != nil {
				ips = append(ips, s.IPAddress)
			}
		}
		return e.VirtualIPAddress, e.Port.Int(), ips
	})
}

// entries renders each non-nil entry of v (its VIP, port and real servers
// from fields) and sorts the result.
func entries[E any](v []*E, fields func(*E) (vip string, port int, servers []string)) []string {
	var out []string
	for _, e := range v {
		if e == nil {
			continue
		}
		vip, port, servers := fields(e)
		at := fmt.Sprintf("%s:%d", vip, port)
		out = append(out, at)
		for _, ip := range servers {
			out = append(out, at+"/"+ip)
		}
	}
	slices.Sort(out)
	return out
}
