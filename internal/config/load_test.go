package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go/types"
	"k8s.io/klog/v2"
)

const (
	testToken  = "tok-4b1d3c0ffee"
	testSecret = "sec-9f8e7d6c5b4a-do-not-print"
)

func envOf(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const minimalFile = "accessToken: " + testToken + "\naccessTokenSecret: " + testSecret + "\nzone: is1a\n"

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimalFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		AccessToken: testToken, AccessTokenSecret: testSecret, Zone: "is1a",
		RetryMax: 5, RetryIntervalSec: 1, RetryMaxWaitSec: 8, RequestsPerSecond: 5, RequestTimeoutSec: 30,
		ServerCacheTTLSec: 60,
		LoadBalancer:      LoadBalancerConfig{Type: "internet", Plan: "standard", ELBPlan: 100, ELBRegion: "is1", SweepIntervalSec: 300, SweepMode: "delete", EndpointHoldDownSec: 10, EndpointMinIntervalSec: 5, HealthPollIntervalSec: 60, RepairIntervalSec: 60, InventoryTTLSec: 300, AdoptEarlier: true, Class: "k8s.usacloud.jp/dsr", ELBClass: "k8s.usacloud.jp/elb", ServiceController: "upstream"},
	}
	if fmt.Sprintf("%#v", want) != fmt.Sprintf("%#v", *c) || c.AccessToken != testToken || c.AccessTokenSecret != testSecret {
		t.Fatalf("defaults:\n got %s\nwant %s", c.Redacted(), want.Redacted())
	}
	if c.ServerCacheTTL() != time.Minute {
		t.Errorf("ServerCacheTTL = %v", c.ServerCacheTTL())
	}
	l := c.Limits()
	if l.RetryMax != 5 || l.RetryWaitMin != time.Second || l.RetryWaitMax != 8*time.Second || l.RequestsPerSecond != 5 || l.Burst != 5 || l.RequestTimeout != 30*time.Second {
		t.Errorf("Limits = %+v", l)
	}
}

func TestEnvironmentWinsOverFile(t *testing.T) {
	file := minimalFile + `clusterID: from-file
apiRootURL: http://127.0.0.1:1/file
retryMax: 2
retryIntervalSec: 2
retryMaxWaitSec: 3
requestsPerSecond: 2.5
requestTimeoutSec: 7
serverCacheTTLSec: 30
disableLoadBalancer: false
loadBalancer:
  type: switch
  plan: premium
  ha: true
  routerID: "113100000001"
  switchSelector: [a, b]
  ipRange: 192.168.0.0/24
  assignIPRange: 192.168.0.128/25
  assignDefaultGateway: 192.168.0.1
`
	c, err := Parse([]byte(file), envOf(map[string]string{
		"SAKURACLOUD_ACCESS_TOKEN":          "env-token",
		"SAKURACLOUD_ACCESS_TOKEN_SECRET":   "env-secret",
		"SAKURACLOUD_ZONE":                  "tk1b",
		"SAKURACLOUD_CLUSTER_ID":            "from-env",
		"SAKURACLOUD_API_ROOT_URL":          "http://127.0.0.1:2/env",
		"SAKURACLOUD_RETRY_MAX":             "0",
		"SAKURACLOUD_RETRY_INTERVAL_SEC":    "1",
		"SAKURACLOUD_RETRY_MAX_WAIT_SEC":    "4",
		"SAKURACLOUD_REQUESTS_PER_SECOND":   "10",
		"SAKURACLOUD_REQUEST_TIMEOUT_SEC":   "9",
		"SAKURACLOUD_SERVER_CACHE_TTL_SEC":  "15",
		"SAKURACLOUD_DISABLE_LOAD_BALANCER": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessToken != "env-token" || c.AccessTokenSecret != "env-secret" || c.Zone != "tk1b" ||
		c.ClusterID != "from-env" || c.APIRootURL != "http://127.0.0.1:2/env" || c.RetryMax != 0 ||
		c.RetryIntervalSec != 1 || c.RetryMaxWaitSec != 4 || c.RequestsPerSecond != 10 ||
		c.RequestTimeoutSec != 9 || c.ServerCacheTTLSec != 15 || !c.DisableLoadBalancer {
		t.Errorf("environment did not win: %s", c.Redacted())
	}
	// Values only in the file survive.
	lb := c.LoadBalancer
	if lb.Type != "switch" || lb.Plan != "premium" || !lb.HA || lb.RouterID != "113100000001" ||
		strings.Join(lb.SwitchSelector, ",") != "a,b" || lb.AssignDefaultGateway != "192.168.0.1" {
		t.Errorf("file values lost: %+v", lb)
	}
	// File over defaults, without environment.
	c, err = Parse([]byte(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RetryMax != 2 || c.RequestsPerSecond != 2.5 || c.ClusterID != "from-file" || c.Limits().Burst != 3 {
		t.Errorf("file did not win over defaults: %s", c.Redacted())
	}
}

func TestEmptyVariableIsUnset(t *testing.T) {
	c, err := Parse([]byte(minimalFile+"clusterID: keep\n"), envOf(map[string]string{
		"SAKURACLOUD_CLUSTER_ID": "", "SAKURACLOUD_ACCESS_TOKEN": "", "SAKURACLOUD_RETRY_MAX": "",
	}))
	if err != nil || c.ClusterID != "keep" || c.AccessToken != testToken || c.RetryMax != 5 {
		t.Fatalf("empty variables overrode the file: %v %v", c, err)
	}
}

func TestEnvironmentOnly(t *testing.T) {
	c, err := Parse(nil, envOf(map[string]string{
		"SAKURACLOUD_ACCESS_TOKEN": testToken, "SAKURACLOUD_ACCESS_TOKEN_SECRET": testSecret, "SAKURACLOUD_ZONE": "is1b",
	}))
	if err != nil || c.Zone != "is1b" {
		t.Fatalf("c=%v err=%v", c, err)
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cloud.yaml")
	if err := os.WriteFile(p, []byte(minimalFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(p, nil); err != nil || c.Zone != "is1a" {
		t.Fatalf("Load: %v %v", c, err)
	}
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "reading cloud-config") || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("missing file: %v", err)
	}
	if c, err := FromReader(strings.NewReader(minimalFile), nil); err != nil || c.Zone != "is1a" {
		t.Fatalf("FromReader: %v %v", c, err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestErrorMessages(t *testing.T) {
	creds := "accessToken: " + testToken + "\naccessTokenSecret: " + testSecret + "\n"
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"missing token", "accessTokenSecret: " + testSecret + "\nzone: is1a\n", nil,
			"invalid configuration: accessToken (SAKURACLOUD_ACCESS_TOKEN): Required value"},
		{"missing secret", "accessToken: " + testToken + "\nzone: is1a\n", nil,
			"invalid configuration: accessTokenSecret (SAKURACLOUD_ACCESS_TOKEN_SECRET): Required value"},
		{"missing zone", creds, nil,
			"invalid configuration: zone (SAKURACLOUD_ZONE): Required value: one of is1a, is1b, is1c, tk1a, tk1b, tk1v (or set zones)"},
		{"unknown zone in zones", creds + "zones: [is1a, is9x, is1a]\n", nil,
			`invalid configuration: zones[1] (SAKURACLOUD_ZONES): Unsupported value: "is9x": supported values: "is1a", "is1b", "is1c", "tk1a", "tk1b", "tk1v"; ` +
				`zones[2] (SAKURACLOUD_ZONES): Duplicate value: "is1a"`},
		{"zone outside zones", creds + "zone: is1c\nzones: [is1a, is1b]\n", nil,
			`invalid configuration: zone (SAKURACLOUD_ZONE): Invalid value: "is1c": load balancers live in zone, so it must be one of zones: is1a, is1b`},
		{"zones from env", creds + "zone: is1a\n", map[string]string{"SAKURACLOUD_ZONES": "is1b,tk1a"},
			`invalid configuration: zone (SAKURACLOUD_ZONE): Invalid value: "is1a": load balancers live in zone, so it must be one of zones: is1b, tk1a`},
		{"unknown zone", creds + "zone: is2z\n", nil,
			`invalid configuration: zone (SAKURACLOUD_ZONE): Unsupported value: "is2z": supported values: "is1a", "is1b", "is1c", "tk1a", "tk1b", "tk1v"`},
		{"unknown zone from env", creds + "zone: is1a\n", map[string]string{"SAKURACLOUD_ZONE": "us1"},
			`invalid configuration: zone (SAKURACLOUD_ZONE): Unsupported value: "us1": supported values: "is1a", "is1b", "is1c", "tk1a", "tk1b", "tk1v"`},
		{"bad url", minimalFile + "apiRootURL: ftp://x\n", nil,
			"invalid configuration: apiRootURL (SAKURACLOUD_API_ROOT_URL): Invalid value: must be an absolute http(s) URL such as https://secure.sakura.ad.jp/cloud/zone"},
		{"relative url", minimalFile, map[string]string{"SAKURACLOUD_API_ROOT_URL": "/cloud/zone"},
			"invalid configuration: apiRootURL (SAKURACLOUD_API_ROOT_URL): Invalid value: must be an absolute http(s) URL such as https://secure.sakura.ad.jp/cloud/zone"},
		{"negative retryMax", minimalFile + "retryMax: -1\n", nil,
			"invalid configuration: retryMax (SAKURACLOUD_RETRY_MAX): Invalid value: -1: must not be negative"},
		{"negative retryIntervalSec", minimalFile, map[string]string{"SAKURACLOUD_RETRY_INTERVAL_SEC": "-3"},
			"invalid configuration: retryIntervalSec (SAKURACLOUD_RETRY_INTERVAL_SEC): Invalid value: -3: must not be negative"},
		{"negative retryMaxWaitSec", minimalFile + "retryIntervalSec: 0\nretryMaxWaitSec: -2\n", nil,
			"invalid configuration: retryMaxWaitSec (SAKURACLOUD_RETRY_MAX_WAIT_SEC): Invalid value: -2: must not be negative"},
		{"wait below interval", minimalFile + "retryIntervalSec: 9\nretryMaxWaitSec: 3\n", nil,
			"invalid configuration: retryMaxWaitSec (SAKURACLOUD_RETRY_MAX_WAIT_SEC): Invalid value: 3: must be at least retryIntervalSec (9)"},
		{"zero rate", minimalFile + "requestsPerSecond: 0\n", nil,
			"invalid configuration: requestsPerSecond (SAKURACLOUD_REQUESTS_PER_SECOND): Invalid value: 0: must be greater than 0"},
		{"negative rate", minimalFile, map[string]string{"SAKURACLOUD_REQUESTS_PER_SECOND": "-1.5"},
			"invalid configuration: requestsPerSecond (SAKURACLOUD_REQUESTS_PER_SECOND): Invalid value: -1.5: must be greater than 0"},
		{"zero timeout", minimalFile + "requestTimeoutSec: 0\n", nil,
			"invalid configuration: requestTimeoutSec (SAKURACLOUD_REQUEST_TIMEOUT_SEC): Invalid value: 0: must be at least 1"},
		{"negative ttl", minimalFile + "serverCacheTTLSec: -5\n", nil,
			"invalid configuration: serverCacheTTLSec (SAKURACLOUD_SERVER_CACHE_TTL_SEC): Invalid value: -5: must be at least 1"},
		{"lb type", minimalFile + "loadBalancer:\n  type: vpc\n", nil,
			`invalid configuration: loadBalancer.type: Unsupported value: "vpc": supported values: "internet", "switch", "enhanced"`},
		{"lb elbPlan", minimalFile + "loadBalancer:\n  elbPlan: 250\n", nil,
			`invalid configuration: loadBalancer.elbPlan: Unsupported value: "250": supported values: "100", "500", "1000", "5000", "10000", "50000", "100000", "400000"`},
		{"lb elbPlan zero", minimalFile + "loadBalancer:\n  elbPlan: 0\n", nil,
			`invalid configuration: loadBalancer.elbPlan: Unsupported value: "0": supported values: "100", "500", "1000", "5000", "10000", "50000", "100000", "400000"`},
		{"lb elbRegion", minimalFile + "loadBalancer:\n  elbRegion: os1\n", nil,
			`invalid configuration: loadBalancer.elbRegion: Unsupported value: "os1": supported values: "tk1", "is1", "anycast"`},
		{"lb elbRegion empty", minimalFile + "loadBalancer:\n  elbRegion: \"\"\n", nil,
			`invalid configuration: loadBalancer.elbRegion: Unsupported value: "": supported values: "tk1", "is1", "anycast"`},
		{"lb plan", minimalFile + "loadBalancer:\n  plan: gold\n", nil,
			`invalid configuration: loadBalancer.plan: Unsupported value: "gold": supported values: "standard", "highspec", "premium (= highspec)"`},
		{"lb ipRange", minimalFile + "loadBalancer:\n  ipRange: 10.0.0.0\n", nil,
			`invalid configuration: loadBalancer.ipRange: Invalid value: "10.0.0.0": must be an IPv4 CIDR with a mask from /8 to /30, such as 192.168.0.0/24`},
		{"lb assignIPRange", minimalFile + "loadBalancer:\n  assignIPRange: x/24\n", nil,
			`invalid configuration: loadBalancer.assignIPRange: Invalid value: "x/24": must be an IPv4 CIDR with a mask from /16 to /30, such as 192.168.0.0/24`},
		{"lb gateway", minimalFile + "loadBalancer:\n  assignDefaultGateway: gw\n", nil,
			`invalid configuration: loadBalancer.assignDefaultGateway: Invalid value: "gw": must be an IPv4 address such as 192.168.0.1`},
		{"lb routerID", minimalFile + "loadBalancer:\n  routerID: abc\n", nil,
			`invalid configuration: loadBalancer.routerID: Invalid value: "abc": must be a numeric resource ID such as 113000000123`},
		{"lb switchID", minimalFile + "loadBalancer:\n  switchID: \"-1\"\n", nil,
			`invalid configuration: loadBalancer.switchID: Invalid value: "-1": must be a numeric resource ID such as 113000000123`},
		{"lb sweep interval", minimalFile + "loadBalancer:\n  sweepIntervalSec: -1\n", nil,
			"invalid configuration: loadBalancer.sweepIntervalSec (SAKURACLOUD_LOAD_BALANCER_SWEEP_INTERVAL_SEC): Invalid value: -1: must not be negative (0 turns the sweep off)"},
		{"lb sweep mode", minimalFile + "loadBalancer:\n  sweepMode: purge\n", nil,
			`invalid configuration: loadBalancer.sweepMode (SAKURACLOUD_LOAD_BALANCER_SWEEP_MODE): Unsupported value: "purge": supported values: "delete", "report"`},
		{"lb sweep mode env", minimalFile, map[string]string{"SAKURACLOUD_LOAD_BALANCER_SWEEP_MODE": "never"},
			`invalid configuration: loadBalancer.sweepMode (SAKURACLOUD_LOAD_BALANCER_SWEEP_MODE): Unsupported value: "never": supported values: "delete", "report"`},
		{"lb class without a domain", minimalFile + "loadBalancer:\n  class: dsr\n", nil,
			`invalid configuration: loadBalancer.class (SAKURACLOUD_LOAD_BALANCER_CLASS): Invalid value: "dsr": must be a domain-prefixed name such as k8s.usacloud.jp/dsr (or empty to serve no class)`},
		{"lb service controller", minimalFile + "loadBalancer:\n  serviceController: both\n", nil,
			`invalid configuration: loadBalancer.serviceController (SAKURACLOUD_LOAD_BALANCER_SERVICE_CONTROLLER): Unsupported value: "both": supported values: "upstream", "own"`},
		{"env not a number", minimalFile, map[string]string{"SAKURACLOUD_RETRY_MAX": "many"},
			`invalid configuration: retryMax (SAKURACLOUD_RETRY_MAX): Invalid value: "many": must be a whole number (set by the environment variable)`},
		{"env not a float", minimalFile, map[string]string{"SAKURACLOUD_REQUESTS_PER_SECOND": "fast"},
			`invalid configuration: requestsPerSecond (SAKURACLOUD_REQUESTS_PER_SECOND): Invalid value: "fast": must be a number (set by the environment variable)`},
		{"env not a bool", minimalFile, map[string]string{"SAKURACLOUD_DISABLE_LOAD_BALANCER": "yes please"},
			`invalid configuration: disableLoadBalancer (SAKURACLOUD_DISABLE_LOAD_BALANCER): Invalid value: "yes please": must be true or false (set by the environment variable)`},
		{"malformed yaml", minimalFile + "loadBalancer:\n  plan: [standard\n", nil,
			"invalid cloud-config: yaml: line 5: did not find expected ',' or ']'"},
		{"malformed yaml near secret", "zone: is1a\naccessTokenSecret: [" + testSecret + "\n", nil,
			"invalid cloud-config: yaml: line 2: did not find expected ',' or ']'"},
		{"unknown key", minimalFile + "retryMaxx: 3\n", nil,
			`invalid cloud-config: unknown key "retryMaxx" at line 4 (allowed keys are listed in docs/configuration.md)`},
		{"unknown nested key", minimalFile + "loadBalancer:\n  plan: standard\n  vrid: 3\n", nil,
			`invalid cloud-config: unknown key "vrid" at line 6 (allowed keys are listed in docs/configuration.md)`},
		{"wrong type", minimalFile + "retryMax: lots\n", nil,
			`invalid cloud-config: key "retryMax" at line 4 must be of type int`},
		{"several at once", "zone: is1a\nretryMax: -1\n", nil,
			"invalid configuration: accessToken (SAKURACLOUD_ACCESS_TOKEN): Required value; accessTokenSecret (SAKURACLOUD_ACCESS_TOKEN_SECRET): Required value; retryMax (SAKURACLOUD_RETRY_MAX): Invalid value: -1: must not be negative"},
		{"reserved ranges", minimalFile + "loadBalancer:\n  reservedIPRanges: [\"192.168.0.10\", \"192.168.0.20-192.168.0.10\", \"10.0.0.0/33\", \"fd00::1\", \"203.0.113.5 - 203.0.113.9\", \"one\"]\n", nil,
			`invalid configuration: loadBalancer.reservedIPRanges[1]: Invalid value: "192.168.0.20-192.168.0.10": ` + reservedForm +
				`; loadBalancer.reservedIPRanges[2]: Invalid value: "10.0.0.0/33": ` + reservedForm +
				`; loadBalancer.reservedIPRanges[3]: Invalid value: "fd00::1": ` + reservedForm +
				`; loadBalancer.reservedIPRanges[5]: Invalid value: "one": ` + reservedForm},
		{"selectors", minimalFile + "loadBalancer:\n  routerSelector: [\"k8s\", \" k8s\", \"k8s\"]\n  switchSelector: [a,b,c,d,e,f,g,h,i,j,k]\n", nil,
			`invalid configuration: loadBalancer.routerSelector[1]: Invalid value: " k8s": must be a tag without leading or trailing spaces; ` +
				`loadBalancer.routerSelector[2]: Duplicate value: "k8s"; loadBalancer.switchSelector: Too many: 11: must have at most 10 items`},
		{"blocks", minimalFile + "loadBalancer:\n  blocks: [\"113100000001\", abc, \"113100000001\"]\n  switchID: \"113100000009\"\n  switchSelector: [k8s]\n", nil,
			`invalid configuration: loadBalancer.blocks[1]: Invalid value: "abc": must be the numeric ID of a router+switch's switch, such as 113000000123, or zone/ID for a switch of another zone, such as is1b/113000000456; ` +
				`loadBalancer.blocks[2]: Duplicate value: "113100000001"; loadBalancer.switchID: Forbidden: set either blocks or switchID, not both; ` +
				`loadBalancer.switchSelector: Forbidden: set either blocks or switchSelector, not both`},
		{"blocks of zones the cluster has not", minimalFile + "loadBalancer:\n  blocks: [\"113100000001\", \"is1b/113100000002\", \"is1a/113100000001\", \"is1b/\"]\n", nil,
			`invalid configuration: loadBalancer.blocks[2]: Duplicate value: "is1a/113100000001"; ` +
				`loadBalancer.blocks[3]: Invalid value: "is1b/": must be the numeric ID of a router+switch's switch, such as 113000000123, or zone/ID for a switch of another zone, such as is1b/113000000456; ` +
				`loadBalancer.blocks[1]: Unsupported value: "is1b/113100000002": supported values: "is1a/<switch ID>", "<switch ID> (a switch of zone)"; ` +
				`loadBalancer.blocks[3]: Unsupported value: "is1b/": supported values: "is1a/<switch ID>", "<switch ID> (a switch of zone)"`},
		{"load balancer zones", minimalFile + "zones: [is1a, is1b]\nloadBalancer:\n  zones: [is1b, tk1a, is1b]\n  blocks: [\"tk1a/1\", \"is1b/2\"]\n", nil,
			`invalid configuration: loadBalancer.zones[1]: Unsupported value: "tk1a": supported values: "is1a", "is1b"; ` +
				`loadBalancer.zones[2]: Duplicate value: "is1b"; ` +
				`loadBalancer.blocks[0]: Unsupported value: "tk1a/1": supported values: "is1a/<switch ID>", "is1b/<switch ID>", "<switch ID> (a switch of zone)"`},
		{"blocks for type switch", minimalFile + "loadBalancer:\n  type: switch\n  blocks: [\"113100000001\"]\n", nil,
			`invalid configuration: loadBalancer.blocks: Invalid value: ["113100000001"]: lists router+switch blocks, which type switch does not use; set type internet or remove blocks`},
		{"switch network", minimalFile + "loadBalancer:\n  ipRange: 192.168.0.0/24\n  assignIPRange: 192.168.1.0/27\n  assignDefaultGateway: 10.0.0.1\n", nil,
			`invalid configuration: loadBalancer.assignIPRange: Invalid value: "192.168.1.0/27": must lie inside loadBalancer.ipRange (192.168.0.0/24); ` +
				`loadBalancer.assignDefaultGateway: Invalid value: "10.0.0.1": must lie inside loadBalancer.ipRange (192.168.0.0/24)`},
		{"ipRange mask", minimalFile + "loadBalancer:\n  ipRange: 192.168.0.0/31\n", nil,
			`invalid configuration: loadBalancer.ipRange: Invalid value: "192.168.0.0/31": must be an IPv4 CIDR with a mask from /8 to /30, such as 192.168.0.0/24`},
		{"cluster ID with a space", minimalFile + "clusterID: \"prod 1\"\n", nil,
			`invalid configuration: clusterID (SAKURACLOUD_CLUSTER_ID): Invalid value: "prod 1": must not contain spaces or control characters`},
		{"env and file errors together", minimalFile + "loadBalancer:\n  reservedIPRanges: [\"x\"]\n", map[string]string{"SAKURACLOUD_RETRY_MAX": "many"},
			`invalid configuration: retryMax (SAKURACLOUD_RETRY_MAX): Invalid value: "many": must be a whole number (set by the environment variable); ` +
				`loadBalancer.reservedIPRanges[0]: Invalid value: "x": ` + reservedForm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file), envOf(tc.env))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %q\nwant %q", err.Error(), tc.want)
			}
			assertNoSecret(t, err.Error())
		})
	}
}

// TestZones: zones names the cluster's zones; zone alone still works and
// means one zone; with zones only, zone (where load balancers live) is the
// first of them.
func TestZones(t *testing.T) {
	creds := "accessToken: " + testToken + "\naccessTokenSecret: " + testSecret + "\n"
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		zone       string
		zones      []string
	}{
		{"zone only", creds + "zone: is1b\n", nil, "is1b", []string{"is1b"}},
		{"zones only", creds + "zones: [is1b, is1a]\n", nil, "is1b", []string{"is1b", "is1a"}},
		{"both", creds + "zone: is1a\nzones: [is1b, is1a]\n", nil, "is1a", []string{"is1b", "is1a"}},
		{"zones from env", creds + "zone: is1a\n", map[string]string{"SAKURACLOUD_ZONES": " is1a, is1b "}, "is1a", []string{"is1a", "is1b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.file), envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.Zone != tc.zone || !slices.Equal(c.ClusterZones(), tc.zones) {
				t.Errorf("zone %q zones %v, want %q %v", c.Zone, c.ClusterZones(), tc.zone, tc.zones)
			}
		})
	}
}

func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{testToken, testSecret} {
		if strings.Contains(s, secret) {
			t.Errorf("output contains a secret: %s", s)
		}
	}
}

func TestRedaction(t *testing.T) {
	c, err := Parse([]byte(minimalFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.Redacted(), c.String(), fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c),
		fmt.Sprintf("%v %+v %#v", *c, *c, *c)} {
		assertNoSecret(t, s)
		if !strings.Contains(s, "<redacted>") || !strings.Contains(s, "is1a") {
			t.Errorf("unexpected rendering: %s", s)
		}
	}
}

// TestNoSecretInKlog loads configurations (valid and invalid) with klog at
// the highest verbosity and greps everything it wrote for the secrets.
func TestNoSecretInKlog(t *testing.T) {
	var buf bytes.Buffer
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", "10")
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	klog.SetOutput(&buf)
	t.Cleanup(func() {
		_ = fs.Set("v", "0")
		_ = fs.Set("logtostderr", "true")
		klog.SetOutput(os.Stderr)
	})
	c, err := Parse([]byte(minimalFile), envOf(map[string]string{"SAKURACLOUD_CLUSTER_ID": "c1"}))
	if err != nil {
		t.Fatal(err)
	}
	klog.InfoS("config", "c", c)
	klog.V(9).Infof("config %v %+v", c, *c)
	_, err = Parse([]byte(strings.Replace(minimalFile, "is1a", "nowhere", 1)), nil)
	klog.ErrorS(err, "invalid")
	klog.Flush()
	out := buf.String()
	if !strings.Contains(out, "Loaded cloud configuration") || !strings.Contains(out, "<redacted>") {
		t.Fatalf("expected the redacted config in the log, got:\n%s", out)
	}
	assertNoSecret(t, out)
}

// TestDocsListEverySetting fails when docs/configuration.md misses a key,
// an environment variable or a default of the Settings table.
func TestDocsListEverySetting(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, s := range Settings {
		row := ""
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "| `"+s.Key+"` |") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("docs/configuration.md has no table row for %s; regenerate it from config.MarkdownTable()", s.Key)
			continue
		}
		if s.Env != "" && !strings.Contains(row, "`"+s.Env+"`") {
			t.Errorf("docs row for %s does not name %s", s.Key, s.Env)
		}
		if s.Default != "" && !strings.Contains(row, "`"+s.Default+"`") {
			t.Errorf("docs row for %s does not give the default %s", s.Key, s.Default)
		}
	}
	if !strings.Contains(doc, MarkdownTable()) {
		t.Errorf("docs/configuration.md table differs from config.MarkdownTable(); paste this:\n%s", MarkdownTable())
	}
}

func TestEveryConfigFieldHasASetting(t *testing.T) {
	// Each YAML key of Config must have a row in Settings, so docs and env stay complete.
	keys := map[string]bool{}
	for _, s := range Settings {
		keys[s.Key] = true
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := prefix + strings.Split(f.Tag.Get("json"), ",")[0]
			if f.Type.Kind() == reflect.Struct {
				walk(key+".", f.Type)
				continue
			}
			if !keys[key] {
				t.Errorf("config key %s has no row in Settings", key)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}

// TestValidFormsAccepted: every documented form passes, and a bad
// configuration's error carries the field list.
func TestValidFormsAccepted(t *testing.T) {
	c, err := Parse([]byte(minimalFile+`loadBalancer:
  type: switch
  reservedIPRanges: ["192.168.0.10", "192.168.0.20-192.168.0.30", " 192.168.0.40 - 192.168.0.41 ", "192.168.0.64/28"]
  routerSelector: [k8s, prod]
  ipRange: 192.168.0.0/24
  assignIPRange: 192.168.0.192/27
  assignDefaultGateway: 192.168.0.1
`), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LoadBalancer.ReservedIPRanges) != 4 {
		t.Errorf("reserved %v", c.LoadBalancer.ReservedIPRanges)
	}
	_, err = Parse([]byte("zone: is1a\n"), envOf(nil))
	var cfgErr *Error
	if !errors.As(err, &cfgErr) || len(cfgErr.Errs) != 2 || cfgErr.Errs[0].Field != "accessToken" {
		t.Errorf("error %v does not carry the field list", err)
	}
}

// TestEnhancedType: type enhanced is a default like the others, and asks
// for none of the DSR types' settings; elbPlan and elbRegion take every
// value iaas-api-go knows.
func TestEnhancedType(t *testing.T) {
	if DefaultELBPlan != int(types.ProxyLBPlans.CPS100) || DefaultELBRegion != types.ProxyLBRegions.IS1.String() {
		t.Fatalf("defaults %d %q are not iaas-api-go's CPS100 and is1", DefaultELBPlan, DefaultELBRegion)
	}
	c, err := Parse([]byte(minimalFile+"loadBalancer:\n  type: enhanced\n  elbPlan: 5000\n  elbRegion: anycast\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.LoadBalancer.Type != LoadBalancerTypeEnhanced || c.LoadBalancer.ELBPlan != 5000 || c.LoadBalancer.ELBRegion != "anycast" {
		t.Fatalf("got %+v", c.LoadBalancer)
	}
	// Blocks still serve the Services that ask for type internet.
	if _, err := Parse([]byte(minimalFile+"loadBalancer:\n  type: enhanced\n  blocks: [\"113100000001\"]\n"), nil); err != nil {
		t.Fatalf("blocks with default type enhanced: %v", err)
	}
	for _, plan := range types.ProxyLBPlanValues {
		if _, err := Parse([]byte(fmt.Sprintf("%sloadBalancer:\n  elbPlan: %d\n", minimalFile, plan)), nil); err != nil {
			t.Errorf("elbPlan %d: %v", plan, err)
		}
	}
	for _, region := range types.ProxyLBRegionStrings {
		if _, err := Parse([]byte(minimalFile+"loadBalancer:\n  elbRegion: "+region+"\n"), nil); err != nil {
			t.Errorf("elbRegion %s: %v", region, err)
		}
	}
}
