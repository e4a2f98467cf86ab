// Package desired turns a Service, the cluster's nodes and the configuration
// into the load balancer appliance the controller wants. It is pure: no API
// calls, no clock, so table tests cover it completely.
//
// The unit is the appliance, not the Service: an Appliance carries VIP entries
// that each name their owning Service, so several Services can later share one
// appliance by a sharing key without changing the plan or apply packages.
package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/providerid"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	v1 "k8s.io/api/core/v1"
)

// Limits of one DSR appliance (SAKURA manual); one place to change them.
const (
	MaxVIPEntries  = 20
	MaxRealServers = 40
)

// Plan IDs of the DSR load balancer.
const (
	PlanIDStandard types.ID = 1
	PlanIDHighSpec types.ID = 2
)

// Ownership tags. The cluster tag plus the Service UID tag identify an
// appliance as ours; anything without both is never touched.
const (
	TagPrefix     = "k8s.usacloud.jp/"
	ClusterTagKey = TagPrefix + "cluster="
	ServiceTagKey = TagPrefix + "service-uid="
	SharingTagKey = TagPrefix + "sharing-key="
)

// MaxTags is SAKURA's limit of tags on one resource. A shared appliance
// carries the cluster and sharing-key tags plus one service-uid tag per
// member, so at most MaxTags-2 Services share one appliance.
const (
	MaxTags          = 10
	MaxSharedMembers = MaxTags - 2
)

// SharingTag marks an appliance shared by the Services with one sharing key.
func SharingTag(key string) string { return SharingTagKey + key }

// SharingKeyOf returns the sharing key an appliance's tags carry ("" if none).
func SharingKeyOf(tags []string) string {
	for _, t := range tags {
		if k, ok := strings.CutPrefix(t, SharingTagKey); ok {
			return k
		}
	}
	return ""
}

// HasTags reports whether have holds every tag in want.
func HasTags(have []string, want ...string) bool {
	set := make(map[string]bool, len(have))
	for _, t := range have {
		set[t] = true
	}
	for _, t := range want {
		if !set[t] {
			return false
		}
	}
	return true
}

// WithoutMembers returns tags without the service-uid tags of uids.
func WithoutMembers(tags []string, uids ...string) []string {
	drop := make(map[string]bool, len(uids))
	for _, u := range uids {
		drop[ServiceTag(u)] = true
	}
	var out []string
	for _, t := range tags {
		if !drop[t] {
			out = append(out, t)
		}
	}
	return out
}

// WithMember returns tags with exactly one service-uid tag of uid: a
// member joining again (its entries were wiped) must not be counted twice.
func WithMember(tags []string, uid string) []string {
	return append(WithoutMembers(tags, uid), ServiceTag(uid))
}

// MemberUIDs returns the Service UIDs named by service-uid tags, sorted,
// each once: an appliance tagged twice for one Service (by a release with
// issue #18's defect 3) still has that one member.
func MemberUIDs(tags []string) []string {
	var out []string
	for _, t := range tags {
		if u, ok := strings.CutPrefix(t, ServiceTagKey); ok && u != "" {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// ExcludeLabel takes a node out of every external load balancer.
const ExcludeLabel = v1.LabelNodeExcludeBalancers

// ClusterTag is the ownership tag of a cluster.
func ClusterTag(clusterID string) string { return ClusterTagKey + clusterID }

// ServiceTag ties an appliance to one Service.
func ServiceTag(uid string) string { return ServiceTagKey + uid }

// ServiceRef names the Service that owns a VIP entry.
type ServiceRef struct {
	Namespace, Name, UID string
}

func (r ServiceRef) String() string { return r.Namespace + "/" + r.Name }

// RefOf returns the reference of svc.
func RefOf(svc *v1.Service) ServiceRef {
	return ServiceRef{Namespace: svc.Namespace, Name: svc.Name, UID: string(svc.UID)}
}

// Appliance is the wanted state of one load balancer appliance.
type Appliance struct {
	Name        string
	Description string
	Tags        []string // sorted
	SwitchID    types.ID
	PlanID      types.ID
	HA          bool
	VIPs        []VIP // sorted by (IP, Port)
}

// VIP is one VIP+port entry and the real servers behind it.
type VIP struct {
	Owner       ServiceRef
	IP          string
	Port        int
	DelayLoop   int
	SorryServer string
	HealthCheck annotations.HealthCheck
	Servers     []string // real-server IPs, sorted; port = Port
}

// Description is what a VIP entry's description says; it names the owner so
// a shared appliance can tell whose entry it is.
func (v VIP) Description() string { return EntryDescriptionPrefix + v.Owner.String() }

// EntryDescriptionPrefix starts the description of every VIP entry the
// controller writes; the owning Service's namespace/name follows.
const EntryDescriptionPrefix = "k8s:"

// ConfigPendingMark ends an appliance's description while settings the
// controller saved may not be applied yet (a Config not yet confirmed). It
// lives in the cloud, so a restarted controller or a new leader applies
// them: the health poll cannot see a changed health check, delay loop or
// sorry server in the appliance's Status (issue #18, defect 9).
const ConfigPendingMark = " [saved settings not applied yet; the controller applies them]"

// MarkConfigPending returns desc with ConfigPendingMark, once.
func MarkConfigPending(desc string) string {
	return UnmarkConfigPending(desc) + ConfigPendingMark
}

// UnmarkConfigPending returns desc without ConfigPendingMark.
func UnmarkConfigPending(desc string) string { return strings.TrimSuffix(desc, ConfigPendingMark) }

// ConfigPending reports whether desc carries ConfigPendingMark.
func ConfigPending(desc string) bool { return strings.HasSuffix(desc, ConfigPendingMark) }

// SharedName is the deterministic name of the appliance shared by key.
func SharedName(clusterID, key string) string {
	sum := sha256.Sum256([]byte(clusterID + "/shared/" + key))
	base := fmt.Sprintf("k8s-%s-shared-%s", clusterID, key)
	if len(base) > 55 {
		base = base[:55]
	}
	return base + "-" + hex.EncodeToString(sum[:])[:7]
}

// Name is the deterministic appliance name of a Service in a cluster.
// It is readable for humans; identity is carried by the tags.
func Name(clusterID string, svc *v1.Service) string {
	sum := sha256.Sum256([]byte(clusterID + "/" + string(svc.UID)))
	base := fmt.Sprintf("k8s-%s-%s-%s", clusterID, svc.Namespace, svc.Name)
	if len(base) > 55 {
		base = base[:55]
	}
	return base + "-" + hex.EncodeToString(sum[:])[:7]
}

// ErrUnsupportedProtocol marks a Service port the DSR appliance cannot serve.
var ErrUnsupportedProtocol = errors.New("the SAKURA load balancer serves TCP only")

// ErrTooManyPorts marks a Service with more ports than one appliance holds.
var ErrTooManyPorts = errors.New("too many ports")

// CheckPorts refuses what the appliance cannot do, naming the port.
func CheckPorts(svc *v1.Service) error {
	var bad []string
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != v1.ProtocolTCP {
			bad = append(bad, fmt.Sprintf("%s %d/%s", portName(p), p.Port, p.Protocol))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("port %s: %w; remove the port or serve it with a separate Service of another type (e.g. NodePort)", strings.Join(bad, ", "), ErrUnsupportedProtocol)
	}
	if n := len(svc.Spec.Ports); n > MaxVIPEntries {
		return fmt.Errorf("%w: the Service has %d ports, a SAKURA load balancer holds at most %d VIP+port entries; split it into several Services", ErrTooManyPorts, n, MaxVIPEntries)
	}
	if len(svc.Spec.Ports) == 0 {
		return errors.New("the Service has no ports")
	}
	return nil
}

func portName(p v1.ServicePort) string {
	if p.Name != "" {
		return fmt.Sprintf("%q", p.Name)
	}
	return ""
}

// Server is the part of a SAKURA server that backend selection needs.
type Server struct {
	ID   types.ID
	Name string
	// Zone is the zone the server was listed in ("" when not known).
	Zone string
	// IPs maps switch ID to the NIC's user address on that switch; "" when
	// the server has a NIC there but SAKURA knows no address (usual on a
	// plain switch, where the address is set inside the OS).
	IPs map[types.ID]string
	// Plain are the switches of IPs that SAKURA shows as plain switches
	// (the NIC's upstream is a switch, not a router): they cannot be a
	// router+switch block, so choosing one need not read them.
	Plain map[types.ID]bool
	// PreviousIDs are the IDs this server replaced (@previous-id tags).
	PreviousIDs []types.ID
	// Global is the server's address on the shared segment ("" when it has
	// no NIC there): the address an Enhanced Load Balancer reaches it at.
	Global string
}

// MatchServers maps each node's name to its server (by providerID, else
// by unique name), leaving out nodes that match none.
func MatchServers(nodes []*v1.Node, servers []Server) map[string]*Server {
	match := newMatcher(servers)
	out := map[string]*Server{}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if s := match(n); s != nil {
			out[n.Name] = s
		}
	}
	return out
}

// Backend is a node chosen as real server, with its address on the switch.
type Backend struct {
	Node string
	IP   string
}

// Segment is the layer-2 segment a load balancer's real servers must share
// with it (a DSR appliance rewrites only the MAC): its own switch first,
// then the switches a SAKURA bridge joins to it, with the zones they are in.
type Segment struct {
	Switches []types.ID
	// Zones holds the zone of each switch; empty when not known (then no
	// node is told apart as being in another zone).
	Zones []string
}

// OneSwitch is the segment of a switch on no bridge.
func OneSwitch(id types.ID) Segment { return Segment{Switches: []types.ID{id}} }

// nicOn is the server's address on the first switch of seg it has a NIC
// on, and whether it has one.
func (seg Segment) nicOn(s *Server) (string, bool) {
	for _, id := range seg.Switches {
		if ip, ok := s.IPs[id]; ok {
			return ip, true
		}
	}
	return "", false
}

// elsewhere reports whether s lives in a zone none of seg's switches is in:
// no bridge reaches it from there.
func (seg Segment) elsewhere(s *Server) bool {
	return s.Zone != "" && len(seg.Zones) > 0 && !slices.Contains(seg.Zones, s.Zone)
}

// Backends is the outcome of backend selection, with reasons for every node left out.
type Backends struct {
	Selected    []Backend // sorted by node name, at most MaxRealServers
	Excluded    []string  // by ExcludeLabel
	NotOnSwitch []string  // matched a server with no address on the switch
	// OtherZone: matched a server in a zone with no switch on the segment
	// (no bridge joins its zone to the load balancer's switch).
	OtherZone []string
	Unmatched []string // no server found (or ambiguous name)
	Truncated []string // eligible but beyond MaxRealServers
	// OutsideNetwork: on the switch, but no address inside the appliance's
	// network (NIC address outside it, or unknown and no InternalIP in it).
	OutsideNetwork []string
}

// SelectBackends matches nodes to servers (providerID first, then unique name)
// and takes each one's address on switchID. The subset beyond MaxRealServers is
// deterministic: nodes sorted by name, first ones win.
func SelectBackends(nodes []*v1.Node, servers []Server, switchID types.ID) Backends {
	return SelectBackendsOn(nodes, servers, switchID, netip.Prefix{})
}

// SelectBackendsOn is SelectBackends for an appliance whose network is known
// (network valid). A node's address must lie in network; when SAKURA knows
// no address for its NIC on the switch (a plain switch), the Node's
// InternalIP inside network is used, as kubelet reports it.
func SelectBackendsOn(nodes []*v1.Node, servers []Server, switchID types.ID, network netip.Prefix) Backends {
	return SelectBackendsIn(nodes, servers, OneSwitch(switchID), network)
}

// SelectBackendsIn is SelectBackendsOn for an appliance whose switch is on
// a bridge: a node's address may be on any switch of seg (the first one,
// in seg's order, that its server has a NIC on).
func SelectBackendsIn(nodes []*v1.Node, servers []Server, seg Segment, network netip.Prefix) Backends {
	match := newMatcher(servers)
	sorted := append([]*v1.Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var out Backends
	seen := map[string]bool{}
	for _, n := range sorted {
		if n == nil || seen[n.Name] {
			continue
		}
		seen[n.Name] = true
		if _, ok := n.Labels[ExcludeLabel]; ok {
			out.Excluded = append(out.Excluded, n.Name)
			continue
		}
		srv := match(n)
		if srv == nil {
			out.Unmatched = append(out.Unmatched, n.Name)
			continue
		}
		ip, onSwitch := seg.nicOn(srv)
		if !onSwitch && seg.elsewhere(srv) {
			out.OtherZone = append(out.OtherZone, n.Name)
			continue
		}
		if !onSwitch || (ip == "" && !network.IsValid()) {
			out.NotOnSwitch = append(out.NotOnSwitch, n.Name)
			continue
		}
		if network.IsValid() {
			if ip == "" {
				ip = internalIPIn(n, network)
			}
			if a, err := netip.ParseAddr(ip); err != nil || !network.Contains(a) {
				out.OutsideNetwork = append(out.OutsideNetwork, n.Name)
				continue
			}
		}
		if len(out.Selected) >= MaxRealServers {
			out.Truncated = append(out.Truncated, n.Name)
			continue
		}
		out.Selected = append(out.Selected, Backend{Node: n.Name, IP: ip})
	}
	return out
}

// internalIPIn returns the node's first InternalIP inside network, or "".
func internalIPIn(n *v1.Node, network netip.Prefix) string {
	for _, a := range n.Status.Addresses {
		if a.Type != v1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && network.Contains(ip) {
			return ip.String()
		}
	}
	return ""
}

// NodeAddressesIn lists the addresses nodes report inside network: they are
// in use even when SAKURA does not know them.
func NodeAddressesIn(nodes []*v1.Node, network netip.Prefix) map[string]string {
	out := map[string]string{}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && network.Contains(ip) {
				out[ip.String()] = "node " + n.Name
			}
		}
	}
	return out
}

// newMatcher finds a node's server by the same rule as the instances
// adapter, so that the Node's addresses and its real-server entry never come
// from two different servers: a node with a providerID (either form) is the
// server with that ID, else the one server that replaced it (@previous-id
// tag, after a plan change); it never falls back to its name, as a
// re-created server of the same name is another machine. A node without a
// providerID is the one server of exactly its name.
func newMatcher(servers []Server) func(*v1.Node) *Server {
	byID := map[types.ID]*Server{}
	byName := map[string][]*Server{}
	byPrevious := map[types.ID][]*Server{}
	for i := range servers {
		s := &servers[i]
		byID[s.ID] = s
		byName[s.Name] = append(byName[s.Name], s)
		for _, prev := range s.PreviousIDs {
			byPrevious[prev] = append(byPrevious[prev], s)
		}
	}
	return func(n *v1.Node) *Server {
		if n.Spec.ProviderID != "" {
			_, id, err := providerid.Parse(n.Spec.ProviderID)
			if err != nil {
				return nil
			}
			if s := byID[id]; s != nil {
				return s
			}
			if r := byPrevious[id]; len(r) == 1 {
				return r[0]
			}
			return nil
		}
		if c := byName[n.Name]; len(c) == 1 {
			return c[0]
		}
		return nil
	}
}

// Input is everything Build needs, already resolved.
type Input struct {
	ClusterID string
	Service   *v1.Service
	Options   annotations.Options
	SwitchID  types.ID
	VIP       string
	Backends  []Backend
}

// PlanIDOf is the API plan ID the options ask for.
func PlanIDOf(o annotations.Options) types.ID {
	if o.Plan == annotations.PlanHighSpec {
		return PlanIDHighSpec
	}
	return PlanIDStandard
}

// Build returns the appliance wanted for one Service.
func Build(in Input) (*Appliance, error) {
	if err := CheckPorts(in.Service); err != nil {
		return nil, err
	}
	if in.VIP == "" {
		return nil, errors.New("no VIP")
	}
	planID := PlanIDOf(in.Options)
	ref := RefOf(in.Service)
	ips := make([]string, 0, len(in.Backends))
	for _, b := range in.Backends {
		ips = append(ips, b.IP)
	}
	SortIPs(ips)
	a := &Appliance{
		Name:        Name(in.ClusterID, in.Service),
		Description: fmt.Sprintf("Service %s of Kubernetes cluster %s (managed by sakura-cloud-controller-manager)", ref, in.ClusterID),
		Tags:        []string{ClusterTag(in.ClusterID), ServiceTag(ref.UID)},
		SwitchID:    in.SwitchID,
		PlanID:      planID,
		HA:          in.Options.HA,
	}
	if key := in.Options.SharingKey; key != "" {
		a.Name = SharedName(in.ClusterID, key)
		a.Description = fmt.Sprintf("Shared by the Services with sharing key %s in Kubernetes cluster %s (managed by sakura-cloud-controller-manager)", key, in.ClusterID)
		a.Tags = append(a.Tags, SharingTag(key))
	}
	sort.Strings(a.Tags)
	for _, p := range in.Service.Spec.Ports {
		a.VIPs = append(a.VIPs, VIP{
			Owner:       ref,
			IP:          in.VIP,
			Port:        int(p.Port),
			DelayLoop:   in.Options.HealthCheck.Interval,
			SorryServer: in.Options.SorryServer,
			HealthCheck: in.Options.HealthCheck,
			Servers:     append([]string(nil), ips...),
		})
	}
	SortVIPs(a.VIPs)
	return a, nil
}

// SortVIPs orders entries by address then port, the order plan compares in.
func SortVIPs(v []VIP) {
	sort.SliceStable(v, func(i, j int) bool {
		if v[i].IP != v[j].IP {
			return ipLess(v[i].IP, v[j].IP)
		}
		return v[i].Port < v[j].Port
	})
}

// SortIPs orders dotted quads numerically.
func SortIPs(ips []string) { sort.Slice(ips, func(i, j int) bool { return ipLess(ips[i], ips[j]) }) }

func ipLess(a, b string) bool {
	pa, pb := parts(a), parts(b)
	for i := range pa {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return a < b
}

func parts(s string) [4]int {
	var p [4]int
	_, _ = fmt.Sscanf(s, "%d.%d.%d.%d", &p[0], &p[1], &p[2], &p[3])
	return p
}

// NodeSwitches counts, per switch, how many of the nodes (matched to servers
// as in SelectBackends, exclusions ignored) have an address on it. It is the
// evidence for choosing a block when nothing is configured.
//
// A switch SAKURA shows as plain (Server.Plain) is left out: it cannot hold
// a router+switch block.
func NodeSwitches(nodes []*v1.Node, servers []Server) map[types.ID]int {
	return nodeSwitches(nodes, servers, false)
}

// NodeNICSwitches is NodeSwitches counting every NIC, with or without an
// address known to SAKURA (plain switches usually have none).
func NodeNICSwitches(nodes []*v1.Node, servers []Server) map[types.ID]int {
	return nodeSwitches(nodes, servers, true)
}

func nodeSwitches(nodes []*v1.Node, servers []Server, anyNIC bool) map[types.ID]int {
	match := newMatcher(servers)
	out := map[types.ID]int{}
	seen := map[types.ID]bool{}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		s := match(n)
		if s == nil || seen[s.ID] {
			continue
		}
		seen[s.ID] = true
		for sw, ip := range s.IPs {
			if anyNIC || (ip != "" && !s.Plain[sw]) {
				out[sw]++
			}
		}
	}
	return out
}

// ProblemKind says what is wrong with a Service for this controller.
type ProblemKind int

const (
	// ProblemProtocol: a port other than TCP.
	ProblemProtocol ProblemKind = iota
	// ProblemTooManyPorts: more ports than an appliance has entries.
	ProblemTooManyPorts
	// ProblemNoPorts: no port at all.
	ProblemNoPorts
	// ProblemIPFamily: the Service asks for IPv6 only; the DSR appliance
	// has IPv4 addresses only.
	ProblemIPFamily
)

// Problem is one thing that keeps a Service from being served, with a
// message that names the field and what to do.
type Problem struct {
	Kind ProblemKind
	Msg  string
}

// CheckService lists every problem of svc's spec at once (the annotations
// are checked by annotations.Parse): a user fixing one is not told about
// the next only afterwards.
//
// serveTCP is the Service's opt-in to have its TCP ports served when it has
// others too (TCPPorts): then only a Service without any TCP port is a
// protocol problem.
func CheckService(svc *v1.Service, serveTCP bool) []Problem {
	var out []Problem
	if served, skipped := TCPPorts(svc); serveTCP && len(skipped) > 0 {
		if len(served.Spec.Ports) == 0 {
			out = append(out, Problem{Kind: ProblemProtocol, Msg: "the Service has no TCP port to serve; a SAKURA load balancer serves TCP only"})
			svc = nil
		} else {
			svc = served
		}
	}
	if svc == nil {
		return out
	}
	if err := CheckPorts(svc); err != nil {
		kind := ProblemProtocol
		switch {
		case errors.Is(err, ErrTooManyPorts):
			kind = ProblemTooManyPorts
		case len(svc.Spec.Ports) == 0:
			kind = ProblemNoPorts
		}
		out = append(out, Problem{Kind: kind, Msg: err.Error()})
	}
	if IPv6Only(svc) {
		out = append(out, Problem{Kind: ProblemIPFamily, Msg: fmt.Sprintf("spec.ipFamilies is %v: a SAKURA load balancer has IPv4 addresses only; use ipFamilies [IPv4], or ipFamilyPolicy PreferDualStack to be served on IPv4", svc.Spec.IPFamilies)})
	}
	return out
}

// IPv6Only: the Service's families leave no room for IPv4.
func IPv6Only(svc *v1.Service) bool {
	fams := svc.Spec.IPFamilies
	if len(fams) == 0 {
		return false // the API server fills them in; absent means its default (IPv4 here)
	}
	for _, f := range fams {
		if f == v1.IPv4Protocol {
			return false
		}
	}
	return true
}

// DualStack: the Service asks for IPv4 and IPv6; it is served on IPv4.
func DualStack(svc *v1.Service) bool {
	return len(svc.Spec.IPFamilies) > 1 && !IPv6Only(svc)
}

// TCPPorts is svc with its TCP ports only (a copy; svc itself when it has
// no other), and the ports left out.
func TCPPorts(svc *v1.Service) (served *v1.Service, skipped []v1.ServicePort) {
	var tcp []v1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Protocol == "" || p.Protocol == v1.ProtocolTCP {
			tcp = append(tcp, p)
		} else {
			skipped = append(skipped, p)
		}
	}
	if len(skipped) == 0 {
		return svc, nil
	}
	cp := svc.DeepCopy()
	cp.Spec.Ports = tcp
	return cp, skipped
}
