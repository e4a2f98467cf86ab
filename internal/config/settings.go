package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/sacloud/iaas-api-go/types"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

// Setting describes one configuration value: its cloud-config key, its
// environment variable, its default and what it means. Settings is the one
// table that drives defaulting, environment overrides and
// docs/configuration.md (a test fails when the docs drift from it).
type Setting struct {
	// Key is the cloud-config YAML key; nested keys are dotted (loadBalancer.plan).
	Key string
	// Env is the environment variable that overrides Key, or "" if none.
	Env string
	// Default is the value used when neither the file nor the environment sets it
	// ("" = empty / not set). It is applied through set, so it is always parseable.
	Default string
	// Secret values are never printed, logged or echoed in errors.
	Secret bool
	// Doc is a one-line description for docs/configuration.md.
	Doc string

	set func(c *Config, v string) error
}

// Zones lists the zones the controller accepts: those iaas-api-go knows
// (types.ZoneNames), sorted.
var Zones = slices.Sorted(slices.Values(types.ZoneNames))

// Values of loadBalancer.type and loadBalancer.plan.
const (
	LoadBalancerTypeInternet = "internet"
	LoadBalancerTypeSwitch   = "switch"
	// LoadBalancerTypeEnhanced is SAKURA's Enhanced Load Balancer (ELB,
	// "proxylb" in iaas-api-go): a proxy with a VIP of SAKURA's.
	LoadBalancerTypeEnhanced = "enhanced"
	LoadBalancerPlanStandard = "standard"
	LoadBalancerPlanHighSpec = "highspec"
	// LoadBalancerPlanPremium is the earlier controller's name for highspec.
	LoadBalancerPlanPremium = "premium"
	// Values of loadBalancer.sweepMode.
	SweepModeDelete = "delete"
	SweepModeReport = "report"

	// DefaultLoadBalancerClass is the spec.loadBalancerClass served by default.
	DefaultLoadBalancerClass = "k8s.usacloud.jp/dsr"
	// DefaultELBClass is the spec.loadBalancerClass of Enhanced Load
	// Balancer Services served by default.
	DefaultELBClass = "k8s.usacloud.jp/elb"
	// ServiceControllerUpstream and ServiceControllerOwn are the values of
	// loadBalancer.serviceController.
	ServiceControllerUpstream = "upstream"
	ServiceControllerOwn      = "own"

	// DefaultELBPlan (connections per second, the smallest plan) and
	// DefaultELBRegion are the defaults of loadBalancer.elbPlan and
	// loadBalancer.elbRegion.
	DefaultELBPlan   = 100
	DefaultELBRegion = "is1"
)

// Settings is the table of every configuration value.
var Settings = []Setting{
	{Key: "accessToken", Env: "SAKURACLOUD_ACCESS_TOKEN", Secret: true,
		Doc: "API access token (required).",
		set: func(c *Config, v string) error { c.AccessToken = v; return nil }},
	{Key: "accessTokenSecret", Env: "SAKURACLOUD_ACCESS_TOKEN_SECRET", Secret: true,
		Doc: "API access token secret (required).",
		set: func(c *Config, v string) error { c.AccessTokenSecret = v; return nil }},
	{Key: "zone", Env: "SAKURACLOUD_ZONE",
		Doc: "Zone where load balancers are made unless a Service or a blocks entry names another of loadBalancer.zones, and the cluster's only zone when zones is empty: " + strings.Join(Zones, ", ") + ". Required unless zones is set; then it defaults to the first of zones and must be one of them.",
		set: func(c *Config, v string) error { c.Zone = v; return nil }},
	{Key: "zones", Env: "SAKURACLOUD_ZONES",
		Doc: "Zones (list) the cluster's servers live in, e.g. [is1a, is1b]; each Node is looked up in all of them and labelled with its server's zone (see docs/nodes.md, Nodes in several zones), and nodes of any of them on a switch bridged to a load balancer's switch are its real servers (docs/load-balancers.md). Empty: zone alone.",
		set: listSetter(func(c *Config) *[]string { return &c.Zones })},
	{Key: "clusterID", Env: "SAKURACLOUD_CLUSTER_ID",
		Doc: "Cluster identity used to tag and find what this cluster owns. Empty: --cluster-name unless it is the default kubernetes, else the kube-system namespace's UID, recorded in a ConfigMap (see Cluster identity below).",
		set: func(c *Config, v string) error { c.ClusterID = v; return nil }},
	{Key: "apiRootURL", Env: "SAKURACLOUD_API_ROOT_URL",
		Doc: "API endpoint override (simulator, proxies). Empty: https://secure.sakura.ad.jp/cloud/zone.",
		set: func(c *Config, v string) error { c.APIRootURL = v; return nil }},
	{Key: "retryMax", Env: "SAKURACLOUD_RETRY_MAX", Default: strconv.Itoa(sakuraapi.DefaultLimits().RetryMax),
		Doc: "How many times an answer of 429, 503 or 423 is retried (0 = never).",
		set: intSetter(func(c *Config) *int { return &c.RetryMax })},
	{Key: "retryIntervalSec", Env: "SAKURACLOUD_RETRY_INTERVAL_SEC", Default: secondsCeil(sakuraapi.DefaultLimits().RetryWaitMin.Seconds()),
		Doc: "Minimum wait in seconds between retries (a 429 always waits at least 1s).",
		set: intSetter(func(c *Config) *int { return &c.RetryIntervalSec })},
	{Key: "retryMaxWaitSec", Env: "SAKURACLOUD_RETRY_MAX_WAIT_SEC", Default: secondsCeil(sakuraapi.DefaultLimits().RetryWaitMax.Seconds()),
		Doc: "Cap in seconds on one jittered wait between retries.",
		set: intSetter(func(c *Config) *int { return &c.RetryMaxWaitSec })},
	{Key: "requestsPerSecond", Env: "SAKURACLOUD_REQUESTS_PER_SECOND", Default: strconv.FormatFloat(sakuraapi.DefaultLimits().RequestsPerSecond, 'g', -1, 64),
		Doc: "Client-side request budget shared by all controllers of the process.",
		set: func(c *Config, v string) error {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return errors.New("must be a number")
			}
			c.RequestsPerSecond = f
			return nil
		}},
	{Key: "requestTimeoutSec", Env: "SAKURACLOUD_REQUEST_TIMEOUT_SEC", Default: secondsCeil(sakuraapi.DefaultLimits().RequestTimeout.Seconds()),
		Doc: "Timeout in seconds of one API request attempt.",
		set: intSetter(func(c *Config) *int { return &c.RequestTimeoutSec })},
	{Key: "serverCacheTTLSec", Env: "SAKURACLOUD_SERVER_CACHE_TTL_SEC", Default: "60",
		Doc: "How old, in seconds, the shared list of each zone's servers may get before it is listed again.",
		set: intSetter(func(c *Config) *int { return &c.ServerCacheTTLSec })},
	{Key: "disableLoadBalancer", Env: "SAKURACLOUD_DISABLE_LOAD_BALANCER", Default: "false",
		Doc: "true turns off the load balancer part of the service controller.",
		set: boolSetter(func(c *Config) *bool { return &c.DisableLoadBalancer })},
	{Key: "loadBalancer.type", Default: LoadBalancerTypeInternet,
		Doc: "Default load balancer type: internet (router+switch, global VIPs), switch (private) or enhanced (SAKURA's Enhanced Load Balancer, a proxy with a global VIP of SAKURA's; see elbPlan and elbRegion).",
		set: func(c *Config, v string) error { c.LoadBalancer.Type = v; return nil }},
	{Key: "loadBalancer.plan", Default: LoadBalancerPlanStandard,
		Doc: "Default plan: standard or highspec (premium is accepted as highspec).",
		set: func(c *Config, v string) error { c.LoadBalancer.Plan = v; return nil }},
	{Key: "loadBalancer.elbPlan", Default: strconv.Itoa(DefaultELBPlan),
		Doc: "Type enhanced: default plan of new Enhanced Load Balancers, in connections per second: " + joinInts(types.ProxyLBPlanValues) + ". The annotation k8s.usacloud.jp/elb-plan overrides it.",
		set: intSetter(func(c *Config) *int { return &c.LoadBalancer.ELBPlan })},
	{Key: "loadBalancer.elbRegion", Default: DefaultELBRegion,
		Doc: "Type enhanced: default region of new Enhanced Load Balancers: " + strings.Join(types.ProxyLBRegionStrings, ", ") + ". The annotation k8s.usacloud.jp/elb-region overrides it.",
		set: func(c *Config, v string) error { c.LoadBalancer.ELBRegion = v; return nil }},
	{Key: "loadBalancer.ha", Default: "false",
		Doc: "Create load balancers as redundant (VRRP) pairs by default.",
		set: boolSetter(func(c *Config) *bool { return &c.LoadBalancer.HA })},
	{Key: "loadBalancer.routerID",
		Doc: "Pin the router+switch that VIPs come from (type internet).",
		set: func(c *Config, v string) error { c.LoadBalancer.RouterID = v; return nil }},
	{Key: "loadBalancer.switchID",
		Doc: "Pin the switch that VIPs come from (type switch).",
		set: func(c *Config, v string) error { c.LoadBalancer.SwitchID = v; return nil }},
	{Key: "loadBalancer.routerSelector",
		Doc: "Tags (list) the router+switch must carry.",
		set: listSetter(func(c *Config) *[]string { return &c.LoadBalancer.RouterSelector })},
	{Key: "loadBalancer.switchSelector",
		Doc: "Tags (list) the switch must carry.",
		set: listSetter(func(c *Config) *[]string { return &c.LoadBalancer.SwitchSelector })},
	{Key: "loadBalancer.zones",
		Doc: "Zones (list, among zones) load balancers may be made in beside zone: a Service names one with the annotation k8s.usacloud.jp/load-balancer-zone, a blocks entry with zone/ID. A Service's load balancer is looked for in each, so while one's API fails, new load balancers wait (existing ones are updated). Remove a zone only once no load balancer of the cluster is left there. Empty: zone alone. See docs/load-balancers.md, Load balancers in another zone.",
		set: listSetter(func(c *Config) *[]string { return &c.LoadBalancer.Zones })},
	{Key: "loadBalancer.blocks",
		Doc: "Router+switch blocks (switch IDs, list) in order of preference: a new address comes from the first with room, and from the next when it is full, with an AddressBlockSpilled Event. An entry is1b/113200000202 names a switch of another of loadBalancer.zones (its load balancers are made there); a bare ID is a switch of zone. Not with routerID, switchID or the selectors; type internet only. See docs/load-balancers.md, Several address blocks and Load balancers in another zone.",
		set: listSetter(func(c *Config) *[]string { return &c.LoadBalancer.Blocks })},
	{Key: "loadBalancer.reservedIPRanges",
		Doc: "Addresses (a.b.c.d, a.b.c.d-e.f.g.h or CIDR, list) never handed out as VIPs.",
		set: listSetter(func(c *Config) *[]string { return &c.LoadBalancer.ReservedIPRanges })},
	{Key: "loadBalancer.ipRange",
		Doc: "Type switch: the switch's network as a CIDR (gives the mask).",
		set: func(c *Config, v string) error { c.LoadBalancer.IPRange = v; return nil }},
	{Key: "loadBalancer.assignIPRange",
		Doc: "Type switch: CIDR inside ipRange that addresses may be taken from.",
		set: func(c *Config, v string) error { c.LoadBalancer.AssignIPRange = v; return nil }},
	{Key: "loadBalancer.assignDefaultGateway",
		Doc: "Type switch: the default gateway of the load balancers.",
		set: func(c *Config, v string) error { c.LoadBalancer.AssignDefaultGateway = v; return nil }},
	{Key: "loadBalancer.sweepIntervalSec", Env: "SAKURACLOUD_LOAD_BALANCER_SWEEP_INTERVAL_SEC", Default: "300",
		Doc: "Seconds between sweeps that remove appliances whose Service is gone (see docs/load-balancers.md, Leaks and the sweep); 0 turns the sweep off.",
		set: intSetter(func(c *Config) *int { return &c.LoadBalancer.SweepIntervalSec })},
	{Key: "loadBalancer.endpointHoldDownSec", Env: "SAKURACLOUD_LOAD_BALANCER_ENDPOINT_HOLD_DOWN_SEC", Default: "10",
		Doc: "externalTrafficPolicy: Local: seconds a node stays a real server after its last ready endpoint went away, so a short readiness blip does not rewrite the load balancer.",
		set: intSetter(func(c *Config) *int { return &c.LoadBalancer.EndpointHoldDownSec })},
	{Key: "loadBalancer.endpointMinIntervalSec", Env: "SAKURACLOUD_LOAD_BALANCER_ENDPOINT_MIN_INTERVAL_SEC", Default: "5",
		Doc: "externalTrafficPolicy: Local: least seconds between two endpoint-driven updates of one Service's load balancer (bounds writes under pod churn).",
		set: intSetter(func(c *Config) *int { return &c.LoadBalancer.EndpointMinIntervalSec })},
	{Key: "loadBalancer.healthPollIntervalSec", Env: "SAKURACLOUD_LOAD_BALANCER_HEALTH_POLL_INTERVAL_SEC", Default: "60",
		Doc: "Seconds between two polls of real-server health (one Status call per running appliance, paced to at most a fifth of requestsPerSecond); a server going DOWN or UP becomes an Event on its Service. 0 turns it off.",
		set: intSetter(func(c *Config) *int { return &c.LoadBalancer.HealthPollIntervalSec })},
	{Key: "loadBalancer.repairIntervalSec", Env: "SAKURACLOUD_LOAD_BALANCER_REPAIR_INTERVAL_SEC", Default: "60",
		Doc: "Seconds between two repair passes, which compare every LoadBalancer Service's appliance with what the Service wants and bring back what was deleted, stopped or changed outside the controller (one list call per pass, plus the writes a repair needs); the annotation k8s.usacloud.jp/load-balancer-repair: \"false\" opts a Service out. 0 turns it off.",
		set: intSetter(func(c *Config) *int { return &c.LoadBalancer.RepairIntervalSec })},
	{Key: "loadBalancer.inventoryTTLSec", Env: "SAKURACLOUD_LOAD_BALANCER_INVENTORY_TTL_SEC", Default: "300",
		Doc: "Seconds for which an allocation reuses the switch's record and the servers on it (two calls); every appliance of the zone (load balancers, VPC routers, databases, NFS, mobile gateways) comes from one listing made for the reconcile, and a write refused for an address in use reads everything again. A server given an address outside the controller is seen within this time. 0 reads everything for every allocation.",
		set: intSetter(func(c *Config) *int { return &c.LoadBalancer.InventoryTTLSec })},
	{Key: "loadBalancer.adoptEarlier", Env: "SAKURACLOUD_LOAD_BALANCER_ADOPT_EARLIER", Default: "true",
		Doc: "A LoadBalancer Service without a load balancer of this controller adopts the one the earlier controller (sacloud/sakura-cloud-controller-manager) made for it, found by that controller's name and tags, keeping its VIP (see docs/migration.md); false turns this off.",
		set: boolSetter(func(c *Config) *bool { return &c.LoadBalancer.AdoptEarlier })},
	{Key: "loadBalancer.class", Env: "SAKURACLOUD_LOAD_BALANCER_CLASS", Default: DefaultLoadBalancerClass,
		Doc: "The spec.loadBalancerClass this controller serves with its own Service loop, beside other load balancer implementations; Services with any other class are never touched. Empty serves no class.",
		set: func(c *Config, v string) error { c.LoadBalancer.Class = strings.TrimSpace(v); return nil }},
	{Key: "loadBalancer.elbClass", Env: "SAKURACLOUD_LOAD_BALANCER_ELB_CLASS", Default: DefaultELBClass,
		Doc: "A second spec.loadBalancerClass this controller serves with its own Service loop: its Services get an Enhanced Load Balancer whatever their k8s.usacloud.jp/load-balancer-type. Must differ from class. Empty serves no such class.",
		set: func(c *Config, v string) error { c.LoadBalancer.ELBClass = strings.TrimSpace(v); return nil }},
	{Key: "loadBalancer.serviceController", Env: "SAKURACLOUD_LOAD_BALANCER_SERVICE_CONTROLLER", Default: ServiceControllerUpstream,
		Doc: "Which loop serves LoadBalancer Services without a class: upstream (k8s.io/cloud-provider's service controller, as before) or own (this project's loop: a boot is a condition and a Normal Event, never a Warning; the upstream service controller then stands down). See docs/load-balancers.md, Classes.",
		set: func(c *Config, v string) error {
			c.LoadBalancer.ServiceController = strings.ToLower(strings.TrimSpace(v))
			return nil
		}},
	{Key: "loadBalancer.sweepMode", Env: "SAKURACLOUD_LOAD_BALANCER_SWEEP_MODE", Default: SweepModeDelete,
		Doc: "What the sweep does with an orphaned appliance: delete (shut down, then delete) or report (only log and count it).",
		set: func(c *Config, v string) error {
			c.LoadBalancer.SweepMode = strings.ToLower(strings.TrimSpace(v))
			return nil
		}},
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func secondsCeil(s float64) string { return strconv.Itoa(int(math.Ceil(s))) }

func intSetter(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return errors.New("must be a whole number")
		}
		*field(c) = n
		return nil
	}
}

func boolSetter(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return errors.New("must be true or false")
		}
		*field(c) = b
		return nil
	}
}

func listSetter(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		*field(c) = out
		return nil
	}
}

// Defaults returns a Config holding every default of Settings.
func Defaults() *Config {
	c := &Config{}
	for _, s := range Settings {
		if s.Default == "" {
			continue
		}
		if err := s.set(c, s.Default); err != nil {
			panic(fmt.Sprintf("config: default of %s does not parse: %v", s.Key, err))
		}
	}
	return c
}

// MarkdownTable renders Settings as the table in docs/configuration.md.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| cloud-config key | environment variable | default | meaning |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, s := range Settings {
		env, def := "-", "-"
		if s.Env != "" {
			env = "`" + s.Env + "`"
		}
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.Key, env, def, s.Doc)
	}
	return b.String()
}
