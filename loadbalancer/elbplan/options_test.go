package elbplan

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go/types"
)

// valid is the smallest valid Options: plan and region are the only
// fields without a default.
func valid(mut ...func(*Options)) Options {
	o := Options{Plan: 100, Region: "is1"}
	for _, m := range mut {
		m(&o)
	}
	return o
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		// want: the options named by the errors, in order.
		want []string
		// allowed: a substring of the first error's allowed values.
		allowed string
	}{
		{name: "defaults", opts: valid()},
		{name: "everything set", opts: valid(func(o *Options) {
			o.Plan, o.Region, o.Mode = 400000, "anycast", "http"
			o.PortModes = map[int32]types.EProxyLBProxyMode{443: "https", 8443: "tcp"}
			o.RedirectToHTTPS, o.HTTP2, o.SSLPolicy = true, true, "TLS-1-3-2021-06"
			o.HealthCheck = HealthCheck{Protocol: "http", Path: "/healthz", Host: "example.com", DelayLoop: 60}
			o.ProxyProtocol, o.StickySession, o.Gzip = true, true, true
			o.InactiveSec, o.KeepAlive = 600, "aggressive"
			o.SorryServer, o.SorryServerPort = netip.MustParseAddr("198.51.100.7"), 8080
		})},

		{name: "plan zero", opts: valid(func(o *Options) { o.Plan = 0 }), want: []string{OptPlan}, allowed: "100, 500, 1000, 5000, 10000, 50000, 100000, 400000"},
		{name: "plan not offered", opts: valid(func(o *Options) { o.Plan = 200 }), want: []string{OptPlan}},
		{name: "plan smallest", opts: valid(func(o *Options) { o.Plan = 100 })},
		{name: "plan largest", opts: valid(func(o *Options) { o.Plan = 400000 })},
		{name: "plan above largest", opts: valid(func(o *Options) { o.Plan = 400001 }), want: []string{OptPlan}},

		{name: "region empty", opts: valid(func(o *Options) { o.Region = "" }), want: []string{OptRegion}, allowed: "tk1, is1, anycast"},
		{name: "region is a zone", opts: valid(func(o *Options) { o.Region = "is1a" }), want: []string{OptRegion}},
		{name: "region tk1", opts: valid(func(o *Options) { o.Region = "tk1" })},

		{name: "mode udp", opts: valid(func(o *Options) { o.Mode = "udp" }), want: []string{OptMode}, allowed: "http, https, tcp"},
		{name: "mode https", opts: valid(func(o *Options) { o.Mode = "https" })},
		{name: "port mode unknown", opts: valid(func(o *Options) { o.PortModes = map[int32]types.EProxyLBProxyMode{80: "h2"} }), want: []string{OptPortModes}, allowed: "http, https, tcp"},
		{name: "port mode port 0", opts: valid(func(o *Options) { o.PortModes = map[int32]types.EProxyLBProxyMode{0: "tcp"} }), want: []string{OptPortModes}, allowed: "1-65535"},
		{name: "port mode port 65536", opts: valid(func(o *Options) { o.PortModes = map[int32]types.EProxyLBProxyMode{65536: "tcp"} }), want: []string{OptPortModes}},
		{name: "port mode port 65535", opts: valid(func(o *Options) { o.PortModes = map[int32]types.EProxyLBProxyMode{65535: "tcp"} })},

		{name: "ssl policy unknown", opts: valid(func(o *Options) { o.SSLPolicy = "TLS-1-0" }), want: []string{OptSSLPolicy}, allowed: "TLS-1-2-2019-04, TLS-1-2-2021-06, TLS-1-3-2021-06"},

		{name: "health protocol ping", opts: valid(func(o *Options) { o.HealthCheck.Protocol = "ping" }), want: []string{OptHealthProtocol}, allowed: "http, tcp"},
		{name: "health http without path", opts: valid(func(o *Options) { o.HealthCheck.Protocol = "http" }), want: []string{OptHealthPath}, allowed: `starting with "/"`},
		{name: "health http relative path", opts: valid(func(o *Options) { o.HealthCheck = HealthCheck{Protocol: "http", Path: "healthz"} }), want: []string{OptHealthPath}},
		{name: "health http host with space", opts: valid(func(o *Options) { o.HealthCheck = HealthCheck{Protocol: "http", Path: "/", Host: "a b"} }), want: []string{OptHealthHost}},
		{name: "health tcp with path and host", opts: valid(func(o *Options) { o.HealthCheck = HealthCheck{Path: "/", Host: "h"} }), want: []string{OptHealthPath, OptHealthHost}, allowed: "unless the check protocol is http"},
		{name: "delay loop below", opts: valid(func(o *Options) { o.HealthCheck.DelayLoop = MinDelayLoop - 1 }), want: []string{OptHealthDelayLoop}, allowed: "10-60 seconds"},
		{name: "delay loop at min", opts: valid(func(o *Options) { o.HealthCheck.DelayLoop = MinDelayLoop })},
		{name: "delay loop at max", opts: valid(func(o *Options) { o.HealthCheck.DelayLoop = MaxDelayLoop })},
		{name: "delay loop above", opts: valid(func(o *Options) { o.HealthCheck.DelayLoop = MaxDelayLoop + 1 }), want: []string{OptHealthDelayLoop}},

		{name: "timeout below", opts: valid(func(o *Options) { o.InactiveSec = MinInactiveSec - 1 }), want: []string{OptInactiveSec}, allowed: "10-600 seconds"},
		{name: "timeout at min", opts: valid(func(o *Options) { o.InactiveSec = MinInactiveSec })},
		{name: "timeout at max", opts: valid(func(o *Options) { o.InactiveSec = MaxInactiveSec })},
		{name: "timeout above", opts: valid(func(o *Options) { o.InactiveSec = MaxInactiveSec + 1 }), want: []string{OptInactiveSec}},

		{name: "sorry server IPv6", opts: valid(func(o *Options) { o.SorryServer = netip.MustParseAddr("2001:db8::1") }), want: []string{OptSorryServer}, allowed: "IPv4"},
		{name: "sorry port without address", opts: valid(func(o *Options) { o.SorryServerPort = 80 }), want: []string{OptSorryServerPort}, allowed: "together with a sorry server address"},
		{name: "sorry port above", opts: valid(func(o *Options) {
			o.SorryServer, o.SorryServerPort = netip.MustParseAddr("198.51.100.7"), 65536
		}), want: []string{OptSorryServerPort}, allowed: "1-65535"},
		{name: "sorry port negative", opts: valid(func(o *Options) {
			o.SorryServer, o.SorryServerPort = netip.MustParseAddr("198.51.100.7"), -1
		}), want: []string{OptSorryServerPort}},

		{name: "keep-alive unknown", opts: valid(func(o *Options) { o.KeepAlive = "always" }), want: []string{OptKeepAlive}, allowed: "safe, aggressive"},

		{name: "every error at once", opts: Options{Mode: "udp", InactiveSec: 5, HealthCheck: HealthCheck{DelayLoop: 5}},
			want: []string{OptPlan, OptRegion, OptMode, OptHealthDelayLoop, OptInactiveSec}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := c.opts.Validate()
			var got []string
			for _, err := range errs {
				var oe *OptionError
				if !errors.As(err, &oe) {
					t.Fatalf("error %v is not an *OptionError", err)
				}
				got = append(got, oe.Option)
				if !strings.Contains(err.Error(), "option "+oe.Option) || oe.Allowed == "" {
					t.Errorf("error %q does not name its option and what is allowed", err)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("errors for %v, want %v (%v)", got, c.want, errs)
			}
			if c.allowed != "" && !strings.Contains(errs[0].Error(), c.allowed) {
				t.Errorf("error %q lacks %q", errs[0], c.allowed)
			}
		})
	}
}

// The library's enumerations are what Validate accepts; if iaas-api-go
// grows one, this says so instead of the user finding out.
func TestValidateAcceptsEveryLibraryValue(t *testing.T) {
	for _, p := range types.ProxyLBPlanValues {
		if errs := valid(func(o *Options) { o.Plan = p }).Validate(); len(errs) != 0 {
			t.Errorf("plan %d: %v", p, errs)
		}
	}
	for _, r := range types.ProxyLBRegionStrings {
		if errs := valid(func(o *Options) { o.Region = r }).Validate(); len(errs) != 0 {
			t.Errorf("region %s: %v", r, errs)
		}
	}
	for _, p := range types.ProxyLBSSLPolicies {
		if errs := valid(func(o *Options) { o.SSLPolicy = p }).Validate(); len(errs) != 0 {
			t.Errorf("ssl policy %s: %v", p, errs)
		}
	}
	for _, k := range types.ProxyLBBackendHttpKeepAliveStrings {
		if errs := valid(func(o *Options) { o.KeepAlive = types.EProxyLBBackendHttpKeepAlive(k) }).Validate(); len(errs) != 0 {
			t.Errorf("keep-alive %s: %v", k, errs)
		}
	}
}
