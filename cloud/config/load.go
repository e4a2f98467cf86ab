package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud/sakuraapi"
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
	var errs []string
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
			// Setters never fail for secrets, but keep the value out regardless.
			if s.Secret {
				err = errors.New("invalid value")
			}
			errs = append(errs, fmt.Sprintf("environment variable %s: %v", s.Env, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	if err := c.Validate(); err != nil {
		return nil, err
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

// label names a setting by both its key and its variable.
func label(key string) string {
	for _, s := range Settings {
		if s.Key == key && s.Env != "" {
			return fmt.Sprintf("%s (%s)", key, s.Env)
		}
	}
	return key
}

// Validate checks every value and returns one error naming each bad field.
func (c *Config) Validate() error {
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, label(key)+" "+fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(c.AccessToken) == "" {
		bad("accessToken", "is required")
	}
	if strings.TrimSpace(c.AccessTokenSecret) == "" {
		bad("accessTokenSecret", "is required")
	}
	switch {
	case c.Zone == "":
		bad("zone", "is required (one of %s)", strings.Join(Zones, ", "))
	case !slices.Contains(Zones, c.Zone):
		bad("zone", "is %q, which is not a known zone (one of %s)", c.Zone, strings.Join(Zones, ", "))
	}
	if c.APIRootURL != "" {
		u, err := url.Parse(c.APIRootURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL is not echoed: a proxy URL may carry credentials.
			bad("apiRootURL", "must be an absolute http(s) URL such as https://secure.sakura.ad.jp/cloud/zone")
		}
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"retryMax", c.RetryMax},
		{"retryIntervalSec", c.RetryIntervalSec},
		{"retryMaxWaitSec", c.RetryMaxWaitSec},
	} {
		if f.v < 0 {
			bad(f.key, "must not be negative (got %d)", f.v)
		}
	}
	if c.RetryMaxWaitSec >= 0 && c.RetryIntervalSec > c.RetryMaxWaitSec {
		bad("retryMaxWaitSec", "must be at least retryIntervalSec (%d), got %d", c.RetryIntervalSec, c.RetryMaxWaitSec)
	}
	if !(c.RequestsPerSecond > 0) || math.IsInf(c.RequestsPerSecond, 0) {
		bad("requestsPerSecond", "must be greater than 0 (got %s)", strconv.FormatFloat(c.RequestsPerSecond, 'g', -1, 64))
	}
	if c.RequestTimeoutSec < 1 {
		bad("requestTimeoutSec", "must be at least 1 (got %d)", c.RequestTimeoutSec)
	}
	if c.ServerCacheTTLSec < 1 {
		bad("serverCacheTTLSec", "must be at least 1 (got %d)", c.ServerCacheTTLSec)
	}
	lb := &c.LoadBalancer
	switch lb.Type {
	case LoadBalancerTypeInternet, LoadBalancerTypeSwitch:
	default:
		bad("loadBalancer.type", "is %q; allowed: %s, %s", lb.Type, LoadBalancerTypeInternet, LoadBalancerTypeSwitch)
	}
	switch lb.Plan {
	case LoadBalancerPlanStandard, LoadBalancerPlanHighSpec, LoadBalancerPlanPremium:
	default:
		bad("loadBalancer.plan", "is %q; allowed: %s, %s (%s = %s)", lb.Plan,
			LoadBalancerPlanStandard, LoadBalancerPlanHighSpec, LoadBalancerPlanPremium, LoadBalancerPlanHighSpec)
	}
	for _, f := range []struct{ key, v string }{
		{"loadBalancer.ipRange", lb.IPRange}, {"loadBalancer.assignIPRange", lb.AssignIPRange},
	} {
		if f.v != "" {
			if _, _, err := net.ParseCIDR(f.v); err != nil {
				bad(f.key, "is %q, which is not a CIDR such as 192.168.0.0/24", f.v)
			}
		}
	}
	if lb.AssignDefaultGateway != "" && net.ParseIP(lb.AssignDefaultGateway) == nil {
		bad("loadBalancer.assignDefaultGateway", "is %q, which is not an IP address", lb.AssignDefaultGateway)
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"loadBalancer.endpointHoldDownSec", lb.EndpointHoldDownSec}, {"loadBalancer.endpointMinIntervalSec", lb.EndpointMinIntervalSec}, {"loadBalancer.healthPollIntervalSec", lb.HealthPollIntervalSec}, {"loadBalancer.repairIntervalSec", lb.RepairIntervalSec}, {"loadBalancer.inventoryTTLSec", lb.InventoryTTLSec}} {
		if f.v < 0 {
			bad(f.key, "must not be negative (got %d)", f.v)
		}
	}
	if lb.SweepIntervalSec < 0 {
		bad("loadBalancer.sweepIntervalSec", "must not be negative (got %d; 0 turns the sweep off)", lb.SweepIntervalSec)
	}
	switch lb.SweepMode {
	case SweepModeDelete, SweepModeReport:
	default:
		bad("loadBalancer.sweepMode", "is %q; allowed: %s, %s", lb.SweepMode, SweepModeDelete, SweepModeReport)
	}
	for _, id := range []struct{ key, v string }{{"loadBalancer.routerID", lb.RouterID}, {"loadBalancer.switchID", lb.SwitchID}} {
		if id.v != "" {
			if n, err := strconv.ParseInt(id.v, 10, 64); err != nil || n <= 0 {
				bad(id.key, "is %q, which is not a numeric resource ID", id.v)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
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
