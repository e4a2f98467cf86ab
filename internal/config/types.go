// Package config is the one typed place for the controller's configuration:
// the cloud-config file (YAML, --cloud-config) and SAKURACLOUD_* environment
// variables, with environment winning over the file. Names follow the earlier
// sacloud/sakura-cloud-controller-manager so existing configs keep working.
package config

import "strings"

// Config is the whole configuration after loading, defaulting and validation.
type Config struct {
	// AccessToken and AccessTokenSecret authenticate to the API. They are
	// secrets: never log them; use Redacted() to print a Config.
	AccessToken       string `json:"accessToken"`
	AccessTokenSecret string `json:"accessTokenSecret"`
	// Zone is where load balancers live, e.g. is1a; with Zones empty it is
	// also the only zone of the cluster's servers.
	Zone string `json:"zone"`
	// Zones the cluster's servers live in (ClusterZones gives the list in
	// force: Zones, or Zone alone).
	Zones []string `json:"zones"`
	// ClusterID tags and finds what this cluster owns. Defaults to --cluster-name.
	ClusterID string `json:"clusterID"`
	// APIRootURL overrides the API endpoint (simulator, proxies).
	APIRootURL string `json:"apiRootURL"`

	// Client tuning.
	RetryMax          int     `json:"retryMax"`
	RetryIntervalSec  int     `json:"retryIntervalSec"` // minimum wait between retries
	RetryMaxWaitSec   int     `json:"retryMaxWaitSec"`  // cap on one wait between retries
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	RequestTimeoutSec int     `json:"requestTimeoutSec"`
	// ServerCacheTTLSec bounds how stale the shared server list may get.
	ServerCacheTTLSec int `json:"serverCacheTTLSec"`

	// DisableLoadBalancer turns the Service controller's cloud side off.
	DisableLoadBalancer bool `json:"disableLoadBalancer"`

	LoadBalancer LoadBalancerConfig `json:"loadBalancer"`
}

// LoadBalancerConfig holds cluster-wide defaults for LoadBalancer Services;
// Service annotations override them per Service.
type LoadBalancerConfig struct {
	// RouterID / SwitchID pin the router+switch block (or, for type switch,
	// the switch) that VIPs come from. Empty: choose by selector or by nodes.
	RouterID string `json:"routerID"`
	SwitchID string `json:"switchID"`
	// Blocks are router+switch blocks (their switch IDs) in order of
	// preference: new addresses come from the first with room, the
	// others take over when it is full. An entry "is1b/113000000456"
	// names a switch of another of the cluster's zones; a bare ID is a
	// switch of zone. Exclusive with the four settings around it.
	Blocks []string `json:"blocks"`
	// Zones are the zones (among the cluster's) load balancers may be made
	// in beside the cluster-config zone; each is listed when a Service's
	// load balancer is looked for. Empty: zone alone (ApplianceZones).
	Zones []string `json:"zones"`
	// RouterSelector / SwitchSelector are tags the router or switch must carry.
	RouterSelector []string `json:"routerSelector"`
	SwitchSelector []string `json:"switchSelector"`
	// ReservedIPRanges are addresses (a.b.c.d, a.b.c.d-e.f.g.h or CIDR) that
	// the controller must never hand out.
	ReservedIPRanges []string `json:"reservedIPRanges"`
	// Plan is standard or highspec (premium is accepted as highspec).
	Plan string `json:"plan"`
	// HA makes new appliances redundant pairs.
	HA bool `json:"ha"`
	// Type is internet (router+switch, global VIPs), switch (private) or
	// enhanced (SAKURA's Enhanced Load Balancer).
	Type string `json:"type"`
	// ELBPlan (connections per second) and ELBRegion are what new
	// Enhanced Load Balancers get unless a Service's annotations say
	// otherwise.
	ELBPlan   int    `json:"elbPlan"`
	ELBRegion string `json:"elbRegion"`
	// For Type switch: the network (CIDR), where addresses may be taken from
	// (CIDR inside IPRange) and the default gateway.
	IPRange              string `json:"ipRange"`
	AssignIPRange        string `json:"assignIPRange"`
	AssignDefaultGateway string `json:"assignDefaultGateway"`
	// SweepIntervalSec is how often appliances of deleted Services are looked
	// for and removed (0 = never).
	SweepIntervalSec int `json:"sweepIntervalSec"`
	// SweepMode is delete (remove orphans) or report (only log and count).
	SweepMode string `json:"sweepMode"`
	// EndpointHoldDownSec keeps a node a real server of a Local Service
	// this long after its last ready endpoint went away.
	EndpointHoldDownSec int `json:"endpointHoldDownSec"`
	// EndpointMinIntervalSec spaces endpoint-driven updates of one Service.
	EndpointMinIntervalSec int `json:"endpointMinIntervalSec"`
	// HealthPollIntervalSec is how often real-server health is read (0 = never).
	HealthPollIntervalSec int `json:"healthPollIntervalSec"`
	// RepairIntervalSec is how often every Service's appliance is compared
	// with what the Service wants and repaired (0 = never).
	RepairIntervalSec int `json:"repairIntervalSec"`
	// InventoryTTLSec is how long the switch's own record and the servers
	// on it are reused for allocation (0 = read them for every
	// allocation); appliances come from the zone's listing.
	InventoryTTLSec int `json:"inventoryTTLSec"`
	// AdoptEarlier lets a Service adopt the appliance the earlier SAKURA
	// controller made for it (by its name and tags).
	AdoptEarlier bool `json:"adoptEarlier"`
	// Class is the spec.loadBalancerClass this controller's own Service
	// loop serves ("" serves none).
	Class string `json:"class"`
	// ELBClass is the spec.loadBalancerClass whose Services get an
	// Enhanced Load Balancer whatever their type annotation ("" serves none).
	ELBClass string `json:"elbClass"`
	// ServiceController says which loop serves LoadBalancer Services
	// without a class: upstream (k8s.io/cloud-provider's service
	// controller) or own (this project's loop, the one that serves Class).
	ServiceController string `json:"serviceController"`
}

// ClusterZones returns the zones the cluster's servers live in: Zones when
// set, else Zone alone.
func (c *Config) ClusterZones() []string {
	if len(c.Zones) > 0 {
		return c.Zones
	}
	if c.Zone == "" {
		return nil
	}
	return []string{c.Zone}
}

// SplitBlock is the zone and switch ID of a loadBalancer.blocks entry:
// "zone/ID", or a bare ID of home.
func SplitBlock(entry, home string) (zone, switchID string) {
	if z, id, ok := strings.Cut(entry, "/"); ok {
		return z, id
	}
	return home, entry
}

// ApplianceZones are the zones load balancers may live in: zone first,
// then loadBalancer.zones.
func (c *Config) ApplianceZones() []string {
	out := []string{c.Zone}
	for _, z := range c.LoadBalancer.Zones {
		if z != c.Zone {
			out = append(out, z)
		}
	}
	return out
}
