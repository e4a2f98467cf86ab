// Package plan compares the wanted appliance with the one the API reports and
// returns the ordered actions that close the gap. It is pure and table-tested;
// apply executes the actions.
package plan

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

// Kind of action.
type Kind string

const (
	// Create a new appliance with the wanted settings.
	Create Kind = "Create"
	// UpdateSettings replaces the VIP entries (read-modify-write) and applies them with Config.
	UpdateSettings Kind = "UpdateSettings"
	// ReportDrift warns about differences the API cannot change in place.
	ReportDrift Kind = "ReportDrift"
)

// Drift is one difference that needs a new appliance to resolve.
type Drift struct {
	Field string
	Have  string
	Want  string
}

func (d Drift) String() string { return fmt.Sprintf("%s is %s, wanted %s", d.Field, d.Have, d.Want) }

// Action is one step.
type Action struct {
	Kind Kind
	// VIPs are the complete wanted entries (Create, UpdateSettings).
	VIPs iaas.LoadBalancerVirtualIPAddresses
	// Changes describe, for humans, what UpdateSettings changes.
	Changes []string
	Drift   []Drift
}

// Compute returns the actions that bring have to want; have == nil means
// nothing exists yet. An empty result means "in sync": zero writes.
func Compute(want *desired.Appliance, have *iaas.LoadBalancer) []Action {
	if have == nil {
		return []Action{{Kind: Create, VIPs: ToAPI(want.VIPs)}}
	}
	var out []Action
	var drift []Drift
	if have.SwitchID != want.SwitchID {
		drift = append(drift, Drift{"switch", have.SwitchID.String(), want.SwitchID.String()})
	}
	drift = append(drift, FixedDrift(have, want.PlanID, want.HA)...)
	if changes := DiffVIPs(want.VIPs, have.VirtualIPAddresses); len(changes) > 0 {
		out = append(out, Action{Kind: UpdateSettings, VIPs: ToAPI(want.VIPs), Changes: changes})
	}
	if len(drift) > 0 {
		out = append(out, Action{Kind: ReportDrift, Drift: drift})
	}
	return out
}

// FixedDrift compares the plan and redundancy an appliance was created with.
func FixedDrift(have *iaas.LoadBalancer, planID types.ID, ha bool) []Drift {
	var drift []Drift
	if have.PlanID != planID {
		drift = append(drift, Drift{"plan", planName(have.PlanID), planName(planID)})
	}
	if haveHA := len(have.IPAddresses) > 1; haveHA != ha {
		drift = append(drift, Drift{"ha", strconv.FormatBool(haveHA), strconv.FormatBool(ha)})
	}
	return drift
}

// SharingDrift compares the sharing key an appliance was created for with
// the one wanted ("" = an appliance of its own): it decides the appliance's
// members, so it does not change in place either.
func SharingDrift(have, want string) []Drift {
	if have == want {
		return nil
	}
	return []Drift{{"sharing-key", orNone(have), orNone(want)}}
}

// ZoneDrift compares the zone an appliance lives in with the zone the
// Service names ("" = any: the block's zone decides). An appliance never
// moves between zones.
func ZoneDrift(have, want string) []Drift {
	if want == "" || have == want {
		return nil
	}
	return []Drift{{"zone", have, want}}
}

// SplitEntries separates the entries owned by owner (by their description)
// from the other members' entries of a shared appliance.
func SplitEntries(have iaas.LoadBalancerVirtualIPAddresses, owner desired.ServiceRef) (mine, others iaas.LoadBalancerVirtualIPAddresses) {
	want := desired.VIP{Owner: owner}.Description()
	for _, h := range have {
		if h == nil {
			continue
		}
		if h.Description == want {
			mine = append(mine, h)
		} else {
			others = append(others, h)
		}
	}
	return mine, others
}

func planName(id types.ID) string {
	switch id {
	case desired.PlanIDStandard:
		return annotations.PlanStandard
	case desired.PlanIDHighSpec:
		return annotations.PlanHighSpec
	}
	return "plan " + id.String()
}

// ToAPI renders wanted entries in the API's shape. Every real server is
// explicitly Enabled: the API does not default it.
func ToAPI(vips []desired.VIP) iaas.LoadBalancerVirtualIPAddresses {
	out := make(iaas.LoadBalancerVirtualIPAddresses, 0, len(vips))
	for _, v := range vips {
		e := &iaas.LoadBalancerVirtualIPAddress{
			VirtualIPAddress: v.IP,
			Port:             types.StringNumber(v.Port),
			DelayLoop:        types.StringNumber(v.DelayLoop),
			SorryServer:      v.SorryServer,
			Description:      v.Description(),
		}
		for _, ip := range v.Servers {
			e.Servers = append(e.Servers, &iaas.LoadBalancerServer{
				IPAddress:   ip,
				Port:        types.StringNumber(v.Port),
				Enabled:     types.StringTrue,
				HealthCheck: healthCheckToAPI(v.HealthCheck),
			})
		}
		out = append(out, e)
	}
	return out
}

func healthCheckToAPI(h annotations.HealthCheck) *iaas.LoadBalancerServerHealthCheck {
	hc := &iaas.LoadBalancerServerHealthCheck{
		Protocol:       types.ELoadBalancerHealthCheckProtocol(h.Protocol),
		Retry:          types.StringNumber(h.Retry),
		ConnectTimeout: types.StringNumber(h.Timeout),
	}
	if h.Protocol == annotations.ProtocolHTTP || h.Protocol == annotations.ProtocolHTTPS {
		hc.Path = h.Path
		hc.ResponseCode = types.StringNumber(h.Status)
	}
	return hc
}

type vipKey struct {
	ip   string
	port int
}

// DiffVIPs lists, for humans, how have differs from want; empty = same.
// Values the API fills in by itself (DelayLoop default, Retry/Timeout when we
// leave them to the API) are not differences, so a resync stays write-free.
func DiffVIPs(want []desired.VIP, have iaas.LoadBalancerVirtualIPAddresses) []string {
	var changes []string
	haveBy := map[vipKey]*iaas.LoadBalancerVirtualIPAddress{}
	for _, h := range have {
		if h != nil {
			haveBy[vipKey{h.VirtualIPAddress, h.Port.Int()}] = h
		}
	}
	wantKeys := map[vipKey]bool{}
	for _, w := range want {
		k := vipKey{w.IP, w.Port}
		wantKeys[k] = true
		h, ok := haveBy[k]
		if !ok {
			changes = append(changes, fmt.Sprintf("add VIP %s:%d", w.IP, w.Port))
			continue
		}
		changes = append(changes, diffEntry(w, h)...)
	}
	var gone []string
	for k := range haveBy {
		if !wantKeys[k] {
			gone = append(gone, fmt.Sprintf("remove VIP %s:%d", k.ip, k.port))
		}
	}
	sort.Strings(gone)
	return append(changes, gone...)
}

func diffEntry(w desired.VIP, h *iaas.LoadBalancerVirtualIPAddress) []string {
	var c []string
	at := fmt.Sprintf("%s:%d", w.IP, w.Port)
	delay := h.DelayLoop.Int()
	if delay == 0 {
		delay = annotations.DefaultInterval
	}
	if delay != w.DelayLoop {
		c = append(c, fmt.Sprintf("%s: interval %d -> %d", at, delay, w.DelayLoop))
	}
	if h.SorryServer != w.SorryServer {
		c = append(c, fmt.Sprintf("%s: sorry server %q -> %q", at, h.SorryServer, w.SorryServer))
	}
	if h.Description != w.Description() {
		c = append(c, fmt.Sprintf("%s: description", at))
	}
	haveServers := map[string]*iaas.LoadBalancerServer{}
	for _, s := range h.Servers {
		if s != nil {
			haveServers[s.IPAddress] = s
		}
	}
	wantServers := map[string]bool{}
	for _, ip := range w.Servers {
		wantServers[ip] = true
		s, ok := haveServers[ip]
		if !ok {
			c = append(c, fmt.Sprintf("%s: add real server %s", at, ip))
			continue
		}
		if s.Port.Int() != w.Port || s.Enabled != types.StringTrue {
			c = append(c, fmt.Sprintf("%s: real server %s port/enabled", at, ip))
		}
		if !sameHealthCheck(w.HealthCheck, s.HealthCheck) {
			c = append(c, fmt.Sprintf("%s: real server %s health check", at, ip))
		}
	}
	var gone []string
	for ip := range haveServers {
		if !wantServers[ip] {
			gone = append(gone, fmt.Sprintf("%s: remove real server %s", at, ip))
		}
	}
	sort.Strings(gone)
	return append(c, gone...)
}

func sameHealthCheck(w annotations.HealthCheck, h *iaas.LoadBalancerServerHealthCheck) bool {
	if h == nil {
		return false
	}
	if string(h.Protocol) != w.Protocol {
		return false
	}
	if w.Protocol == annotations.ProtocolHTTP || w.Protocol == annotations.ProtocolHTTPS {
		if h.Path != w.Path || h.ResponseCode.Int() != w.Status {
			return false
		}
	}
	if w.Retry != 0 && h.Retry.Int() != w.Retry {
		return false
	}
	if w.Timeout != 0 && h.ConnectTimeout.Int() != w.Timeout {
		return false
	}
	return true
}

// NetworkDrift lists what differs in type and network between an existing
// appliance (of type haveType, on network haveNet) and the options; all of
// it is fixed at creation. A change between internet and switch is one
// drift ("type"); network details are only compared within type switch.
func NetworkDrift(haveType string, have *iaas.LoadBalancer, haveNet netip.Prefix, o annotations.Options) []Drift {
	if haveType != o.Type {
		return []Drift{{"type", haveType, o.Type}}
	}
	if o.Type != annotations.TypeSwitch {
		return nil
	}
	var out []Drift
	p := o.Private
	if haveNet.IsValid() && p.Network.IsValid() && haveNet.Masked() != p.Network {
		out = append(out, Drift{"ip-range", haveNet.Masked().String(), p.Network.String()})
	}
	wantGW := ""
	if p.Gateway.IsValid() {
		wantGW = p.Gateway.String()
	}
	if have.DefaultRoute != wantGW {
		out = append(out, Drift{"assign-default-gateway", orNone(have.DefaultRoute), orNone(wantGW)})
	}
	if p.Assign.IsValid() {
		var outside []string
		for _, s := range have.IPAddresses {
			if a, err := netip.ParseAddr(s); err == nil && !p.Assign.Contains(a) {
				outside = append(outside, s)
			}
		}
		if len(outside) > 0 {
			out = append(out, Drift{"assign-ip-range", "appliance addresses " + strings.Join(outside, ", "), "addresses inside " + p.Assign.String()})
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
