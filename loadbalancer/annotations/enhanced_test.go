package annotations

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/elbplan"
)

func TestDefaultELBPlanIsTheSmallest(t *testing.T) {
	if DefaultELBPlan != int(types.ProxyLBPlans.CPS100) || DefaultELBPlan != slices.Min(types.ProxyLBPlanValues) {
		t.Fatalf("DefaultELBPlan %d is not iaas-api-go's CPS100", DefaultELBPlan)
	}
	if !slices.Contains(types.ProxyLBRegionStrings, DefaultELBRegion) {
		t.Fatalf("DefaultELBRegion %q is no region of iaas-api-go", DefaultELBRegion)
	}
}

func TestParseEnhancedDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Defaults
		want elbplan.Options
	}{
		{"no config", Defaults{}, elbplan.Options{Plan: 100, Region: "is1"}},
		{"config", Defaults{Type: TypeEnhanced, ELBPlan: 5000, ELBRegion: "tk1"}, elbplan.Options{Plan: 5000, Region: "tk1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, errs := ParseEnhanced(svc(nil), tc.d)
			if len(errs) != 0 {
				t.Fatalf("errs = %v", errs)
			}
			if !reflect.DeepEqual(e, Enhanced{ELB: tc.want}) {
				t.Fatalf("got %+v, want %+v", e, Enhanced{ELB: tc.want})
			}
		})
	}
}

func TestParseEnhancedValid(t *testing.T) {
	e, errs := ParseEnhanced(svc(map[string]string{
		Type:                   "enhanced",
		ELBPlan:                " 500 ",
		ELBRegion:              "Anycast",
		ELBPortModes:           "80=http, 443=HTTPS,",
		ELBRedirectToHTTPS:     "true",
		ELBHTTP2:               "true",
		ELBSSLPolicy:           "tls-1-3-2021-06",
		ELBHealthCheckProtocol: "HTTP",
		ELBHealthCheckPath:     "/healthz",
		ELBHealthCheckHost:     "www.example.com",
		ELBHealthCheckInterval: "30",
		ELBProxyProtocol:       "true",
		ELBStickySession:       "true",
		ELBInactivityTimeout:   "600",
		ELBSorryServer:         "192.0.2.9:8080",
		ELBBackendKeepAlive:    "aggressive",
		ELBGzip:                "true",
		ELBVIPFailover:         "true",
		ELBTLSSecret:           "www-tls, api-tls",
		Repair:                 "false",
		Preserve:               "true",
		ELBID:                  "113600000001", // the controller's: never refused
	}), Defaults{})
	if len(errs) != 0 {
		t.Fatalf("errs = %v", errs)
	}
	want := Enhanced{
		ELB: elbplan.Options{
			Plan: 500, Region: "anycast",
			PortModes:       map[int32]types.EProxyLBProxyMode{80: "http", 443: "https"},
			RedirectToHTTPS: true, HTTP2: true, SSLPolicy: "TLS-1-3-2021-06",
			HealthCheck:   elbplan.HealthCheck{Protocol: "http", Path: "/healthz", Host: "www.example.com", DelayLoop: 30},
			ProxyProtocol: true, StickySession: true, InactiveSec: 600,
			SorryServer: netip.MustParseAddr("192.0.2.9"), SorryServerPort: 8080,
			KeepAlive: "aggressive", Gzip: true, VIPFailover: true, TLS: true,
		},
		TLSSecrets: []string{"www-tls", "api-tls"},
		NoRepair:   true, Preserve: true,
	}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got\n %+v\nwant\n %+v", e, want)
	}
}

func TestParseEnhancedSingleValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		check func(elbplan.Options) bool
	}{
		{"one mode for every port", map[string]string{ELBPortModes: "HTTP"}, func(o elbplan.Options) bool { return o.Mode == "http" && o.PortModes == nil }},
		{"sorry server without port", map[string]string{ELBSorryServer: "192.0.2.9"}, func(o elbplan.Options) bool {
			return o.SorryServer == netip.MustParseAddr("192.0.2.9") && o.SorryServerPort == 0
		}},
		{"empty sorry server", map[string]string{ELBSorryServer: ""}, func(o elbplan.Options) bool { return !o.SorryServer.IsValid() }},
		{"empty ssl policy", map[string]string{ELBSSLPolicy: ""}, func(o elbplan.Options) bool { return o.SSLPolicy == "" }},
		{"falses", map[string]string{ELBGzip: "false", ELBHTTP2: "false"}, func(o elbplan.Options) bool { return !o.Gzip && !o.HTTP2 }},
		{"interval bounds", map[string]string{ELBHealthCheckInterval: "10", ELBInactivityTimeout: "10"}, func(o elbplan.Options) bool {
			return o.HealthCheck.DelayLoop == elbplan.MinDelayLoop && o.InactiveSec == elbplan.MinInactiveSec
		}},
		{"tcp check", map[string]string{ELBHealthCheckProtocol: "tcp"}, func(o elbplan.Options) bool { return o.HealthCheck.Protocol == "tcp" }},
		{"empty DSR annotation asks for nothing", map[string]string{LoadBalancerIP: "", HA: " "}, func(elbplan.Options) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, errs := ParseEnhanced(svc(tc.ann), Defaults{})
			if len(errs) != 0 {
				t.Fatalf("errs = %v", errs)
			}
			if !tc.check(e.ELB) {
				t.Fatalf("got %+v", e.ELB)
			}
		})
	}
}

// Each bad value alone is one error naming the annotation and its Table
// entry's allowed values.
func TestParseEnhancedInvalid(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{ELBPlan, "250"},
		{ELBPlan, "cps100"},
		{ELBPlan, ""},
		{ELBRegion, "us1"},
		{ELBPortModes, "ftp"},
		{ELBPortModes, "80=ftp"},
		{ELBPortModes, "x=http"},
		{ELBPortModes, "0=http"},
		{ELBPortModes, "65536=http"},
		{ELBPortModes, "80"},
		{ELBPortModes, "http,443=https"}, // mixed forms
		{ELBPortModes, "80=http,80=https"},
		{ELBPortModes, ""},
		{ELBRedirectToHTTPS, "yes"},
		{ELBHTTP2, ""},
		{ELBSSLPolicy, "TLS-1-0"},
		{ELBHealthCheckProtocol, "ping"},
		{ELBHealthCheckProtocol, ""},
		{ELBHealthCheckPath, "healthz"},
		{ELBHealthCheckPath, "/a b"},
		{ELBHealthCheckHost, "a/b"},
		{ELBHealthCheckInterval, "5"},
		{ELBHealthCheckInterval, "0"}, // not "the default"
		{ELBHealthCheckInterval, "61"},
		{ELBProxyProtocol, "1"},
		{ELBStickySession, "on"},
		{ELBInactivityTimeout, "0"},
		{ELBInactivityTimeout, "601"},
		{ELBSorryServer, "sorry.example"},
		{ELBSorryServer, "2001:db8::1"},
		{ELBSorryServer, "[2001:db8::1]:80"},
		{ELBSorryServer, "192.0.2.9:0"},
		{ELBSorryServer, "192.0.2.9:70000"},
		{ELBBackendKeepAlive, "always"},
		{ELBGzip, "True!"},
		{ELBTLSSecret, "Web_TLS"},
		{ELBTLSSecret, strings.Repeat("s,", 22) + "s"},
		{Repair, "no"},
		{Preserve, "yes"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			ann := map[string]string{tc.name: tc.value}
			if tc.name == ELBHealthCheckPath || tc.name == ELBHealthCheckHost {
				ann[ELBHealthCheckProtocol] = "http" // so that only the value itself is wrong
				if tc.name == ELBHealthCheckHost {
					ann[ELBHealthCheckPath] = "/"
				}
			}
			_, errs := ParseEnhanced(svc(ann), Defaults{})
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %v", errs)
			}
			var ae *Error
			if !errors.As(errs[0], &ae) || ae.Annotation != tc.name || ae.Value != tc.value || ae.Allowed != specOf(tc.name).Allowed {
				t.Fatalf("error does not name annotation, value and allowed values: %#v", errs[0])
			}
		})
	}
}

func TestParseEnhancedManyErrorsAtOnce(t *testing.T) {
	_, errs := ParseEnhanced(svc(map[string]string{
		ELBPlan: "1", ELBRegion: "x", ELBPortModes: "80=ftp", ELBGzip: "yes", Plan: "standard", Preserve: "maybe",
	}), Defaults{})
	got := annotationsOf(t, errs)
	want := []string{ELBPlan, ELBRegion, ELBPortModes, ELBGzip, Preserve, Plan}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors name %v, want %v", got, want)
	}
}

// Validate's errors (values that do not fit together, or the config's
// defaults) are named by the annotation to fix, and a value already
// refused is not reported twice.
func TestParseEnhancedValidateErrorsNameAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		d    Defaults
		want []string
		in   string // a substring of the first error
	}{
		{"http check without path", map[string]string{ELBHealthCheckProtocol: "http"}, Defaults{}, []string{ELBHealthCheckPath}, "required for http"},
		{"path on a tcp check", map[string]string{ELBHealthCheckPath: "/healthz"}, Defaults{}, []string{ELBHealthCheckPath}, "unless the check protocol is http"},
		{"host on a tcp check", map[string]string{ELBHealthCheckHost: "example.com"}, Defaults{}, []string{ELBHealthCheckHost}, "unless the check protocol is http"},
		{"config plan", nil, Defaults{ELBPlan: 7}, []string{ELBPlan}, `"7"`},
		{"config region", nil, Defaults{ELBRegion: "us1"}, []string{ELBRegion}, `"us1"`},
		{"annotation fixes a bad config value", map[string]string{ELBPlan: "1000", ELBRegion: "tk1"}, Defaults{ELBPlan: 7, ELBRegion: "us1"}, nil, ""},
		// The refused protocol leaves the check at tcp: the path is not
		// then reported for not fitting a protocol nobody asked for.
		{"refused protocol, path", map[string]string{ELBHealthCheckProtocol: "https", ELBHealthCheckPath: "/healthz"}, Defaults{}, []string{ELBHealthCheckProtocol}, "elb-health-check-protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := ParseEnhanced(svc(tc.ann), tc.d)
			if got := annotationsOf(t, errs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("errors name %v, want %v (%v)", got, tc.want, errs)
			}
			if tc.in != "" && !strings.Contains(errs[0].Error(), tc.in) {
				t.Fatalf("error %q lacks %q", errs[0], tc.in)
			}
		})
	}
}

// Every option Validate can complain about is carried by an annotation.
func TestEveryOptionHasAnAnnotation(t *testing.T) {
	for _, opt := range []string{
		elbplan.OptPlan, elbplan.OptRegion, elbplan.OptMode, elbplan.OptPortModes, elbplan.OptSSLPolicy,
		elbplan.OptHealthProtocol, elbplan.OptHealthPath, elbplan.OptHealthHost, elbplan.OptHealthDelayLoop,
		elbplan.OptInactiveSec, elbplan.OptSorryServer, elbplan.OptSorryServerPort, elbplan.OptKeepAlive,
		elbplan.OptRedirectToHTTPS, elbplan.OptHTTP2,
	} {
		name, ok := optionAnnotation[opt]
		if !ok {
			t.Errorf("option %s has no annotation", opt)
			continue
		}
		specOf(name) // panics for a name without a Table entry
	}
}

// The DSR types' annotations on a type enhanced Service are refused, each
// saying where it applies and, where there is one, what to use instead.
func TestParseEnhancedRefusesDSRAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name, value, instead string
	}{
		{HA, "true", ""},
		{Plan, "standard", ELBPlan},
		{HealthzInterval, "10", ELBHealthCheckInterval},
		{HealthCheckProtocol, "tcp", ELBHealthCheckProtocol},
		{HealthCheckPath, "/", ELBHealthCheckPath},
		{HealthCheckStatus, "200", ELBHealthCheckInterval},
		{HealthCheckRetry, "3", ELBHealthCheckProtocol},
		{HealthCheckTimeout, "5", ELBHealthCheckPath},
		{SorryServer, "192.0.2.9", ELBSorryServer},
		{LoadBalancerIP, "192.0.2.10", "given by SAKURA"},
		{RouterSelector, "r", ELBRegion},
		{SwitchSelector, "s", ELBRegion},
		{SharingKey, "web", ""},
		{Zone, "is1b", ELBRegion},
		{MixedProtocol, "serve-tcp", ""},
		{IPRange, "192.168.0.0/24", ""},
		{AssignIPRange, "192.168.0.128/25", ""},
		{AssignDefaultGateway, "192.168.0.1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := ParseEnhanced(svc(map[string]string{Type: TypeEnhanced, tc.name: tc.value}), Defaults{Zones: []string{"is1a", "is1b"}})
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %v", errs)
			}
			var ae *Error
			if !errors.As(errs[0], &ae) || ae.Annotation != tc.name || ae.Value != tc.value {
				t.Fatalf("error does not name the annotation and value: %#v", errs[0])
			}
			if !strings.HasPrefix(ae.Allowed, "not set: applies to type") || !strings.Contains(ae.Allowed, tc.instead) {
				t.Fatalf("allowed %q does not say where it applies and %q", ae.Allowed, tc.instead)
			}
		})
	}
	s := svc(nil)
	s.Spec.LoadBalancerIP = "192.0.2.10"
	_, errs := ParseEnhanced(s, Defaults{})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "spec.loadBalancerIP") || !strings.Contains(errs[0].Error(), "given by SAKURA") {
		t.Fatalf("spec.loadBalancerIP: %v", errs)
	}
}

// And the reverse: elb-* annotations on an internet or switch Service are
// refused, while a Service without them parses as before.
func TestParseRefusesELBAnnotationsOnDSR(t *testing.T) {
	for _, name := range elbAnnotations {
		t.Run(name, func(t *testing.T) {
			_, errs := Parse(svc(map[string]string{name: "x"}), Defaults{})
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %v", errs)
			}
			var ae *Error
			if !errors.As(errs[0], &ae) || ae.Annotation != name || !strings.Contains(ae.Allowed, "type enhanced only") {
				t.Fatalf("error does not name %s and where it applies: %v", name, errs[0])
			}
		})
	}
	sw := map[string]string{Type: "switch", IPRange: "192.168.0.0/24", AssignIPRange: "192.168.0.128/25", ELBGzip: "true"}
	if _, errs := Parse(svc(sw), Defaults{}); len(annotationsOf(t, errs)) != 1 || annotationsOf(t, errs)[0] != ELBGzip {
		t.Fatalf("type switch: %v", errs)
	}
	// Not refused: the controller's ELB ID, empty values, type enhanced,
	// and a mistyped type (its own error says what to fix).
	for _, tc := range []struct {
		ann  map[string]string
		d    Defaults
		want []string
	}{
		{map[string]string{ELBID: "113600000001", ELBPlan: ""}, Defaults{}, nil},
		{map[string]string{Type: "Enhanced", ELBPlan: "100"}, Defaults{}, nil},
		{map[string]string{ELBPlan: "100"}, Defaults{Type: TypeEnhanced}, nil},
		{map[string]string{Type: "enhance", ELBPlan: "100"}, Defaults{}, []string{Type}},
	} {
		if _, errs := Parse(svc(tc.ann), tc.d); !reflect.DeepEqual(annotationsOf(t, errs), tc.want) {
			t.Errorf("%v with %+v: errors %v, want %v", tc.ann, tc.d, errs, tc.want)
		}
	}
}

func TestTypeOf(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		d    Defaults
		want string
	}{
		{nil, Defaults{}, TypeInternet},
		{nil, Defaults{Type: "Enhanced"}, TypeEnhanced},
		{nil, Defaults{Type: TypeSwitch}, TypeSwitch},
		{map[string]string{Type: " ENHANCED "}, Defaults{Type: TypeSwitch}, TypeEnhanced},
		{map[string]string{Type: "internet"}, Defaults{Type: TypeEnhanced}, TypeInternet},
		{map[string]string{Type: "Publik"}, Defaults{}, "publik"}, // invalid: kept for Parse to report
		{map[string]string{Type: ""}, Defaults{Type: TypeEnhanced}, ""},
	} {
		if got := TypeOf(svc(tc.ann), tc.d); got != tc.want {
			t.Errorf("TypeOf(%v, %+v) = %q, want %q", tc.ann, tc.d, got, tc.want)
		}
	}
}

// Every Table entry of an ELB annotation says it is for type enhanced.
func TestELBTableEntries(t *testing.T) {
	for _, name := range append(slices.Clone(elbAnnotations), ELBID) {
		s := specOf(name)
		if !strings.HasPrefix(s.Meaning, "Type enhanced: ") || s.Default == "" || s.Allowed == "" {
			t.Errorf("%s: incomplete Table entry %+v", name, s)
		}
	}
}

func annotationsOf(t *testing.T, errs []error) []string {
	t.Helper()
	var out []string
	for _, err := range errs {
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("not an *Error: %#v", err)
		}
		out = append(out, ae.Annotation)
	}
	return out
}

// The ELB class makes a Service enhanced; a type annotation saying
// otherwise is refused rather than silently overruled.
func TestELBClass(t *testing.T) {
	d := Defaults{ELBClass: "k8s.usacloud.jp/elb"}
	withClass := func(class string, ann map[string]string) *v1.Service {
		s := svc(ann)
		s.Spec.LoadBalancerClass = &class
		return s
	}
	if got := TypeOf(withClass("k8s.usacloud.jp/elb", nil), d); got != TypeEnhanced {
		t.Errorf("ELB class without annotation: %q", got)
	}
	if got := TypeOf(withClass("k8s.usacloud.jp/dsr", nil), d); got != TypeInternet {
		t.Errorf("another class: %q", got)
	}
	if got := TypeOf(withClass("k8s.usacloud.jp/elb", nil), Defaults{}); got != TypeInternet {
		t.Errorf("no ELB class configured: %q", got)
	}
	if _, errs := ParseEnhanced(withClass("k8s.usacloud.jp/elb", map[string]string{Type: "Enhanced"}), d); len(errs) != 0 {
		t.Errorf("type enhanced on the ELB class: %v", errs)
	}
	_, errs := ParseEnhanced(withClass("k8s.usacloud.jp/elb", map[string]string{Type: "internet"}), d)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), Type) || !strings.Contains(errs[0].Error(), "k8s.usacloud.jp/elb") {
		t.Errorf("type internet on the ELB class: %v", errs)
	}
}

func TestParseEnhancedLetsEncrypt(t *testing.T) {
	e, errs := ParseEnhanced(svc(map[string]string{ELBLetsEncrypt: " www.example.com ", ELBLetsEncryptAltNames: "b.example.com, a.example.com"}), Defaults{})
	if len(errs) != 0 || e.ELB.LetsEncrypt.CommonName != "www.example.com" || strings.Join(e.ELB.LetsEncrypt.AltNames, ",") != "b.example.com,a.example.com" {
		t.Fatalf("got %+v, %v", e.ELB.LetsEncrypt, errs)
	}
	for _, tc := range []struct {
		ann  map[string]string
		name string
	}{
		{map[string]string{ELBLetsEncryptAltNames: "a.example.com"}, ELBLetsEncryptAltNames},
		{map[string]string{ELBLetsEncrypt: "WWW.Example.com"}, ELBLetsEncrypt},
		{map[string]string{ELBLetsEncrypt: "www.example.com", ELBLetsEncryptAltNames: "a b"}, ELBLetsEncryptAltNames},
	} {
		_, errs := ParseEnhanced(svc(tc.ann), Defaults{})
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.name) {
			t.Errorf("%v: errs = %v, want one naming %s", tc.ann, errs, tc.name)
		}
	}
}

func TestParseEnhancedAdoptID(t *testing.T) {
	e, errs := ParseEnhanced(svc(map[string]string{AdoptID: "113600000001"}), Defaults{})
	if len(errs) != 0 || e.AdoptID != "113600000001" {
		t.Fatalf("got %q, %v", e.AdoptID, errs)
	}
	if _, errs := ParseEnhanced(svc(map[string]string{AdoptID: "elb-1"}), Defaults{}); len(errs) != 1 || !strings.Contains(errs[0].Error(), AdoptID) {
		t.Fatalf("a bad ID: %v", errs)
	}
}
