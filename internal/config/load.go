package config

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	sacloudtypes "github.com/sacloud/iaas-api-go/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

// LookupEnv is how Load reads the environment; os.LookupEnv in production.
type LookupEnv func(name string) (string, bool)

// Load reads the cloud-config file at path (may be "" for none), applies the
// environment on top (environment wins), fills defaults and validates.
func Load(path string, env LookupEnv) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading cloud-config %s: %w", path, err)
		}
	}
	return Parse(data, env)
}

// FromReader is Load for the io.Reader cloudprovider hands to providers (nil = no file).
func FromReader(r io.Reader, env LookupEnv) (*Config, error) {
	var data []byte
	if r != nil {
		var err error
		if data, err = io.ReadAll(r); err != nil {
			return nil, fmt.Errorf("reading cloud-config: %w", err)
		}
	}
	return Parse(data, env)
}

// Parse is Load on the file's contents.
func Parse(data []byte, env LookupEnv) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	c := Defaults()
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			return nil, fmt.Errorf("invalid cloud-config: %s", describeYAMLError(err, data))
		}
	}
	// Every problem at once: variables that do not parse, then every
	// value that is out of bounds.
	var errs field.ErrorList
	for _, s := range Settings {
		if s.Env == "" {
			continue
		}
		// An empty variable counts as unset (as in the earlier controller), so
		// a chart that always sets SAKURACLOUD_CLUSTER_ID="" keeps the file's value.
		v, ok := env(s.Env)
		if !ok || v == "" {
			continue
		}
		if err := s.set(c, v); err != nil {
			var bad any = v
			// Setters never fail for secrets, but keep the value out regardless.
			if s.Secret {
				bad = field.OmitValueType{}
			}
			errs = append(errs, field.Invalid(path(s.Key), bad, err.Error()+" (set by the environment variable)"))
		}
	}
	c.defaultZone()
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return nil, &Error{Errs: errs}
	}
	klog.V(2).InfoS("Loaded cloud configuration", "config", c.Redacted())
	return c, nil
}

var (
	unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)
	wrongType    = regexp.MustCompile(`Go struct field [^ ]*?([A-Za-z0-9]+) of type ([^ ]+)`)
)

// describeYAMLError keeps the library's message for YAML syntax errors (they
// already carry "line N") and rewrites the JSON stage's errors, which carry no
// line, into "key at line N".
func describeYAMLError(err error, data []byte) string {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown key %q%s (allowed keys are listed in docs/configuration.md)", m[1], lineOf(data, m[1]))
	}
	if m := wrongType.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("key %q%s must be of type %s", m[1], lineOf(data, m[1]), m[2])
	}
	return msg
}

// lineOf finds the first line that sets key (the last part of a dotted path).
func lineOf(data []byte, key string) string {
	if i := strings.LastIndex(key, "."); i >= 0 {
		key = key[i+1:]
	}
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
		if strings.HasPrefix(t, key+":") || strings.HasPrefix(t, `"`+key+`":`) {
			return fmt.Sprintf(" at line %d", i+1)
		}
	}
	return ""
}

// label names a setting by its key and its variable: field is a
// field.Path string such as loadBalancer.reservedIPRanges[2].
func label(fieldPath string) string {
	key, rest := fieldPath, ""
	if i := strings.IndexByte(fieldPath, '['); i >= 0 {
		key, rest = fieldPath[:i], fieldPath[i:]
	}
	for _, s := range Settings {
		if s.Key == key && s.Env != "" {
			return fmt.Sprintf("%s%s (%s)", key, rest, s.Env)
		}
	}
	return fieldPath
}

// Error is an invalid configuration: every problem found, each naming its
// setting (key, index and variable), the value and the allowed form.
type Error struct {
	Errs field.ErrorList
}

func (e *Error) Error() string {
	msgs := make([]string, 0, len(e.Errs))
	for _, fe := range e.Errs {
		msgs = append(msgs, label(fe.Field)+": "+fe.ErrorBody())
	}
	return "invalid configuration: " + strings.Join(msgs, "; ")
}

// path is the field path of a dotted cloud-config key.
func path(key string) *field.Path {
	parts := strings.Split(key, ".")
	return field.NewPath(parts[0], parts[1:]...)
}

// Validate checks every value and returns an *Error listing each bad one.
func (c *Config) Validate() error {
	if errs := c.validate(); len(errs) > 0 {
		return &Error{Errs: errs}
	}
	return nil
}

// clusterIDChars are the characters a cluster ID may not contain: it
// becomes a tag value and part of appliance names.
const clusterIDChars = " \t\r\n\v\f"

func (c *Config) validate() field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(c.AccessToken) == "" {
		errs = append(errs, field.Required(path("accessToken"), ""))
	}
	if strings.TrimSpace(c.AccessTokenSecret) == "" {
		errs = append(errs, field.Required(path("accessTokenSecret"), ""))
	}
	errs = append(errs, c.validateZones()...)
	if strings.ContainsAny(c.ClusterID, clusterIDChars) || strings.ContainsFunc(c.ClusterID, unicode.IsControl) {
		errs = append(errs, field.Invalid(path("clusterID"), c.ClusterID, "must not contain spaces or control characters"))
	}
	if c.APIRootURL != "" {
		u, err := url.Parse(c.APIRootURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL is not echoed: a proxy URL may carry credentials.
			errs = append(errs, field.Invalid(path("apiRootURL"), field.OmitValueType{},
				"must be an absolute http(s) URL such as https://secure.sakura.ad.jp/cloud/zone"))
		}
	}
	notNegative := func(key string, v int, detail string) {
		if v < 0 {
			errs = append(errs, field.Invalid(path(key), v, "must not be negative"+detail))
		}
	}
	notNegative("retryMax", c.RetryMax, "")
	notNegative("retryIntervalSec", c.RetryIntervalSec, "")
	notNegative("retryMaxWaitSec", c.RetryMaxWaitSec, "")
	if c.RetryMaxWaitSec >= 0 && c.RetryIntervalSec > c.RetryMaxWaitSec {
		errs = append(errs, field.Invalid(path("retryMaxWaitSec"), c.RetryMaxWaitSec,
			fmt.Sprintf("must be at least retryIntervalSec (%d)", c.RetryIntervalSec)))
	}
	if !(c.RequestsPerSecond > 0) || math.IsInf(c.RequestsPerSecond, 0) {
		errs = append(errs, field.Invalid(path("requestsPerSecond"), c.RequestsPerSecond, "must be greater than 0"))
	}
	if c.RequestTimeoutSec < 1 {
		errs = append(errs, field.Invalid(path("requestTimeoutSec"), c.RequestTimeoutSec, "must be at least 1"))
	}
	if c.ServerCacheTTLSec < 1 {
		errs = append(errs, field.Invalid(path("serverCacheTTLSec"), c.ServerCacheTTLSec, "must be at least 1"))
	}
	errs = append(errs, c.LoadBalancer.validate()...)
	return append(errs, c.validateBlockZones()...)
}

// validateBlockZones checks loadBalancer.zones (among the cluster's zones,
// each once) and the zone a blocks entry names: one of the load balancers'
// zones (appliances are listed there, nowhere else).
func (c *Config) validateBlockZones() field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	zones := []string{c.Zone}
	for i, z := range c.LoadBalancer.Zones {
		p := path("loadBalancer.zones").Index(i)
		switch {
		case !slices.Contains(c.ClusterZones(), z):
			errs = append(errs, field.NotSupported(p, z, c.ClusterZones()))
		case seen[z]:
			errs = append(errs, field.Duplicate(p, z))
		case z != c.Zone:
			zones = append(zones, z)
		}
		seen[z] = true
	}
	for i, entry := range c.LoadBalancer.Blocks {
		zone, _, named := strings.Cut(entry, "/")
		if named && !slices.Contains(zones, zone) {
			errs = append(errs, field.NotSupported(path("loadBalancer.blocks").Index(i), entry, prefixEach(zones, "/<switch ID>")))
		}
	}
	return errs
}

func prefixEach(list []string, suffix string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s + suffix
	}
	return append(out, "<switch ID> (a switch of zone)")
}

// defaultZone makes the first of zones the load balancers' zone when only
// zones is set.
func (c *Config) defaultZone() {
	if c.Zone == "" && len(c.Zones) > 0 {
		c.Zone = c.Zones[0]
	}
}

// validateZones checks zone and zones: each a known zone, no repeats, and
// zone (where load balancers live) one of zones.
func (c *Config) validateZones() field.ErrorList {
	var errs field.ErrorList
	switch {
	case c.Zone == "" && len(c.Zones) == 0:
		errs = append(errs, field.Required(path("zone"), "one of "+strings.Join(Zones, ", ")+" (or set zones)"))
	case c.Zone != "" && !slices.Contains(Zones, c.Zone):
		errs = append(errs, field.NotSupported(path("zone"), c.Zone, Zones))
	}
	seen := map[string]bool{}
	for i, z := range c.Zones {
		p := path("zones").Index(i)
		switch {
		case !slices.Contains(Zones, z):
			errs = append(errs, field.NotSupported(p, z, Zones))
		case seen[z]:
			errs = append(errs, field.Duplicate(p, z))
		}
		seen[z] = true
	}
	if c.Zone != "" && len(c.Zones) > 0 && slices.Contains(Zones, c.Zone) && !seen[c.Zone] {
		errs = append(errs, field.Invalid(path("zone"), c.Zone,
			"load balancers live in zone, so it must be one of zones: "+strings.Join(c.Zones, ", ")))
	}
	return errs
}

// validateBlocks checks loadBalancer.blocks: numeric switch IDs, each once,
// for type internet, and no other way of choosing the block beside it
// (which would win would be a guess).
func (lb *LoadBalancerConfig) validateBlocks() field.ErrorList {
	if len(lb.Blocks) == 0 {
		return nil
	}
	var errs field.ErrorList
	p := path("loadBalancer.blocks")
	seen := map[string]bool{}
	for i, entry := range lb.Blocks {
		_, id := SplitBlock(entry, "")
		if n, err := strconv.ParseInt(id, 10, 64); err != nil || n <= 0 {
			errs = append(errs, field.Invalid(p.Index(i), entry, "must be the numeric ID of a router+switch's switch, such as 113000000123, or zone/ID for a switch of another zone, such as is1b/113000000456"))
		} else if seen[id] {
			errs = append(errs, field.Duplicate(p.Index(i), entry))
		}
		seen[id] = true
	}
	if lb.Type == LoadBalancerTypeSwitch {
		errs = append(errs, field.Invalid(p, lb.Blocks, "lists router+switch blocks, which type switch does not use; set type internet or remove blocks"))
	}
	for _, other := range []struct {
		key string
		set bool
	}{{"routerID", lb.RouterID != ""}, {"switchID", lb.SwitchID != ""}, {"routerSelector", len(lb.RouterSelector) > 0}, {"switchSelector", len(lb.SwitchSelector) > 0}} {
		if other.set {
			errs = append(errs, field.Forbidden(path("loadBalancer."+other.key), "set either blocks or "+other.key+", not both"))
		}
	}
	return errs
}

// maxSelectorTags is how many tags a SAKURA resource carries at most: a
// selector asking for more can never match.
const maxSelectorTags = 10

func (lb *LoadBalancerConfig) validate() field.ErrorList {
	var errs field.ErrorList
	kinds := []string{LoadBalancerTypeInternet, LoadBalancerTypeSwitch, LoadBalancerTypeEnhanced}
	if !slices.Contains(kinds, lb.Type) {
		errs = append(errs, field.NotSupported(path("loadBalancer.type"), lb.Type, kinds))
	}
	// Checked whatever the type: a Service may ask for type enhanced
	// while the default type is another.
	if !slices.Contains(sacloudtypes.ProxyLBPlanValues, lb.ELBPlan) {
		plans := make([]string, len(sacloudtypes.ProxyLBPlanValues))
		for i, p := range sacloudtypes.ProxyLBPlanValues {
			plans[i] = strconv.Itoa(p)
		}
		errs = append(errs, field.NotSupported(path("loadBalancer.elbPlan"), strconv.Itoa(lb.ELBPlan), plans))
	}
	if !slices.Contains(sacloudtypes.ProxyLBRegionStrings, lb.ELBRegion) {
		errs = append(errs, field.NotSupported(path("loadBalancer.elbRegion"), lb.ELBRegion, sacloudtypes.ProxyLBRegionStrings))
	}
	if !slices.Contains([]string{LoadBalancerPlanStandard, LoadBalancerPlanHighSpec, LoadBalancerPlanPremium}, lb.Plan) {
		errs = append(errs, field.NotSupported(path("loadBalancer.plan"), lb.Plan,
			[]string{LoadBalancerPlanStandard, LoadBalancerPlanHighSpec, LoadBalancerPlanPremium + " (= " + LoadBalancerPlanHighSpec + ")"}))
	}
	for _, id := range []struct{ key, v string }{{"loadBalancer.routerID", lb.RouterID}, {"loadBalancer.switchID", lb.SwitchID}} {
		if id.v != "" {
			if n, err := strconv.ParseInt(id.v, 10, 64); err != nil || n <= 0 {
				errs = append(errs, field.Invalid(path(id.key), id.v, "must be a numeric resource ID such as 113000000123"))
			}
		}
	}
	errs = append(errs, lb.validateBlocks()...)
	for _, sel := range []struct {
		key  string
		tags []string
	}{{"loadBalancer.routerSelector", lb.RouterSelector}, {"loadBalancer.switchSelector", lb.SwitchSelector}} {
		p := path(sel.key)
		if len(sel.tags) > maxSelectorTags {
			errs = append(errs, field.TooMany(p, len(sel.tags), maxSelectorTags))
		}
		seen := map[string]bool{}
		for i, tag := range sel.tags {
			switch {
			case strings.TrimSpace(tag) == "":
				errs = append(errs, field.Invalid(p.Index(i), tag, "must be a non-empty tag"))
			case tag != strings.TrimSpace(tag) || strings.ContainsFunc(tag, unicode.IsControl):
				errs = append(errs, field.Invalid(p.Index(i), tag, "must be a tag without leading or trailing spaces"))
			case seen[tag]:
				errs = append(errs, field.Duplicate(p.Index(i), tag))
			}
			seen[tag] = true
		}
	}
	for i, r := range lb.ReservedIPRanges {
		if detail := checkRange(r); detail != "" {
			errs = append(errs, field.Invalid(path("loadBalancer.reservedIPRanges").Index(i), r, detail))
		}
	}
	ipRange, ipRangeOK := checkPrefix(&errs, "loadBalancer.ipRange", lb.IPRange, 8, 30)
	assign, assignOK := checkPrefix(&errs, "loadBalancer.assignIPRange", lb.AssignIPRange, 16, 30)
	if ipRangeOK && assignOK && (!ipRange.Contains(assign.Addr()) || assign.Bits() < ipRange.Bits()) {
		errs = append(errs, field.Invalid(path("loadBalancer.assignIPRange"), lb.AssignIPRange,
			fmt.Sprintf("must lie inside loadBalancer.ipRange (%s)", lb.IPRange)))
	}
	if lb.AssignDefaultGateway != "" {
		gw, err := netip.ParseAddr(lb.AssignDefaultGateway)
		switch {
		case err != nil || !gw.Is4():
			errs = append(errs, field.Invalid(path("loadBalancer.assignDefaultGateway"), lb.AssignDefaultGateway,
				"must be an IPv4 address such as 192.168.0.1"))
		case ipRangeOK && !ipRange.Contains(gw):
			errs = append(errs, field.Invalid(path("loadBalancer.assignDefaultGateway"), lb.AssignDefaultGateway,
				fmt.Sprintf("must lie inside loadBalancer.ipRange (%s)", lb.IPRange)))
		}
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"loadBalancer.endpointHoldDownSec", lb.EndpointHoldDownSec}, {"loadBalancer.endpointMinIntervalSec", lb.EndpointMinIntervalSec}, {"loadBalancer.healthPollIntervalSec", lb.HealthPollIntervalSec}, {"loadBalancer.repairIntervalSec", lb.RepairIntervalSec}, {"loadBalancer.inventoryTTLSec", lb.InventoryTTLSec}} {
		if f.v < 0 {
			errs = append(errs, field.Invalid(path(f.key), f.v, "must not be negative"))
		}
	}
	if lb.SweepIntervalSec < 0 {
		errs = append(errs, field.Invalid(path("loadBalancer.sweepIntervalSec"), lb.SweepIntervalSec, "must not be negative (0 turns the sweep off)"))
	}
	if lb.Class != "" {
		// The API server's own rule for spec.loadBalancerClass: a
		// label-style key with a domain prefix.
		if msgs := validation.IsQualifiedName(lb.Class); len(msgs) > 0 || !strings.Contains(lb.Class, "/") {
			errs = append(errs, field.Invalid(path("loadBalancer.class"), lb.Class,
				"must be a domain-prefixed name such as "+DefaultLoadBalancerClass+" (or empty to serve no class)"))
		}
	}
	if lb.ELBClass != "" {
		if msgs := validation.IsQualifiedName(lb.ELBClass); len(msgs) > 0 || !strings.Contains(lb.ELBClass, "/") {
			errs = append(errs, field.Invalid(path("loadBalancer.elbClass"), lb.ELBClass,
				"must be a domain-prefixed name such as "+DefaultELBClass+" (or empty to serve no such class)"))
		} else if lb.ELBClass == lb.Class {
			errs = append(errs, field.Invalid(path("loadBalancer.elbClass"), lb.ELBClass, "must differ from loadBalancer.class"))
		}
	}
	if !slices.Contains([]string{ServiceControllerUpstream, ServiceControllerOwn}, lb.ServiceController) {
		errs = append(errs, field.NotSupported(path("loadBalancer.serviceController"), lb.ServiceController,
			[]string{ServiceControllerUpstream, ServiceControllerOwn}))
	}
	if !slices.Contains([]string{SweepModeDelete, SweepModeReport}, lb.SweepMode) {
		errs = append(errs, field.NotSupported(path("loadBalancer.sweepMode"), lb.SweepMode, []string{SweepModeDelete, SweepModeReport}))
	}
	return errs
}

// checkPrefix checks an optional IPv4 CIDR with a mask between minBits and
// maxBits and returns it.
func checkPrefix(errs *field.ErrorList, key, v string, minBits, maxBits int) (netip.Prefix, bool) {
	if v == "" {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(v)
	if err != nil || !p.Addr().Is4() || p.Bits() < minBits || p.Bits() > maxBits {
		*errs = append(*errs, field.Invalid(path(key), v,
			fmt.Sprintf("must be an IPv4 CIDR with a mask from /%d to /%d, such as 192.168.0.0/24", minBits, maxBits)))
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

// reservedForm is the allowed form of a reservedIPRanges entry.
const reservedForm = "must be an IPv4 address (192.168.0.10), a range with the first address not above the last (192.168.0.10-192.168.0.20) or a CIDR (192.168.0.16/28)"

// checkRange returns why r is not a reservedIPRanges entry, or "". It accepts
// what the allocator's parser (loadbalancer/ipam.ParseRanges) accepts,
// IPv4 only: SAKURA's load balancer addresses are IPv4.
func checkRange(r string) string {
	r = strings.TrimSpace(r)
	if p, err := netip.ParsePrefix(r); err == nil {
		if !p.Addr().Is4() {
			return reservedForm
		}
		return ""
	}
	if lo, hi, ok := strings.Cut(r, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || !a.Is4() || !b.Is4() || b.Less(a) {
			return reservedForm
		}
		return ""
	}
	if a, err := netip.ParseAddr(r); err != nil || !a.Is4() {
		return reservedForm
	}
	return ""
}

// Limits turns the client tuning into sakuraapi.Limits.
func (c *Config) Limits() sakuraapi.Limits {
	l := sakuraapi.DefaultLimits()
	l.RetryMax = c.RetryMax
	l.RetryWaitMin = time.Duration(c.RetryIntervalSec) * time.Second
	l.RetryWaitMax = time.Duration(c.RetryMaxWaitSec) * time.Second
	l.RequestsPerSecond = c.RequestsPerSecond
	l.Burst = max(1, int(math.Ceil(c.RequestsPerSecond)))
	l.RequestTimeout = time.Duration(c.RequestTimeoutSec) * time.Second
	return l
}

// ServerCacheTTL is how long the shared server list stays fresh.
func (c *Config) ServerCacheTTL() time.Duration {
	return time.Duration(c.ServerCacheTTLSec) * time.Second
}

const redacted = "<redacted>"

// Redacted returns a printable copy with the token and secret masked.
func (c *Config) Redacted() string {
	cp := *c
	if cp.AccessToken != "" {
		cp.AccessToken = redacted
	}
	if cp.AccessTokenSecret != "" {
		cp.AccessTokenSecret = redacted
	}
	out, err := yaml.Marshal(&cp)
	if err != nil {
		return "<unprintable config>"
	}
	return strings.TrimSpace(string(out))
}

// String keeps %v and %s from printing secrets.
func (c Config) String() string { return c.Redacted() }

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return c.Redacted() }
