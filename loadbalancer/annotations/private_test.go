package annotations

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParsePrivateValid(t *testing.T) {
	o, errs := Parse(svc(map[string]string{
		Type: "switch", IPRange: "192.168.0.7/24", AssignIPRange: "192.168.0.192/27",
		AssignDefaultGateway: "192.168.0.1", SwitchSelector: "lb",
	}), Defaults{RouterSelector: []string{"from-config"}})
	if len(errs) != 0 {
		t.Fatalf("errs = %v", errs)
	}
	want := Private{Network: netip.MustParsePrefix("192.168.0.0/24"), Assign: netip.MustParsePrefix("192.168.0.192/27"), Gateway: netip.MustParseAddr("192.168.0.1")}
	if o.Type != TypeSwitch || o.Private != want {
		t.Fatalf("got %+v, want %+v", o.Private, want)
	}
	if o.RouterSelector != nil {
		t.Fatalf("config router selector kept for type switch: %v", o.RouterSelector)
	}
	// Defaults from the cloud-config; no gateway is fine.
	o, errs = Parse(svc(nil), Defaults{Type: "switch", IPRange: "10.0.0.0/16", AssignIPRange: "10.0.8.0/24"})
	if len(errs) != 0 || o.Private.Network.String() != "10.0.0.0/16" || o.Private.Assign.String() != "10.0.8.0/24" || o.Private.Gateway.IsValid() {
		t.Fatalf("config defaults: %+v %v", o.Private, errs)
	}
	// Internet Services ignore the switch settings of the config entirely.
	o, errs = Parse(svc(nil), Defaults{IPRange: "bogus", AssignIPRange: "10.0.0.0/8"})
	if len(errs) != 0 || o.Private != (Private{}) {
		t.Fatalf("internet Service affected by switch config: %+v %v", o.Private, errs)
	}
}

// Every problem names the annotation to fix (and the config key when the
// value came from there), and all of them are reported together.
func TestParsePrivateInvalid(t *testing.T) {
	base := map[string]string{Type: "switch", IPRange: "192.168.0.0/24", AssignIPRange: "192.168.0.128/25"}
	cases := []struct {
		name     string
		set      map[string]string
		defaults Defaults
		want     []string // substrings of the single error
		ann      string
	}{
		{"ip-range missing", map[string]string{IPRange: ""}, Defaults{}, []string{IPRange, "required", "loadBalancer.ipRange"}, IPRange},
		{"assign missing", map[string]string{AssignIPRange: ""}, Defaults{}, []string{AssignIPRange, "required"}, AssignIPRange},
		{"ip-range syntax", map[string]string{IPRange: "192.168.0.0"}, Defaults{}, []string{IPRange, `"192.168.0.0"`, "CIDR"}, IPRange},
		{"ip-range v6", map[string]string{IPRange: "2001:db8::/64"}, Defaults{}, []string{IPRange}, IPRange},
		{"ip-range /31", map[string]string{IPRange: "192.168.0.0/31"}, Defaults{}, []string{IPRange}, IPRange},
		{"assign syntax", map[string]string{AssignIPRange: "192.168.0.300/25"}, Defaults{}, []string{AssignIPRange}, AssignIPRange},
		{"assign too big", map[string]string{IPRange: "10.0.0.0/8", AssignIPRange: "10.0.0.0/12"}, Defaults{}, []string{AssignIPRange, "/16-/30"}, AssignIPRange},
		{"assign outside", map[string]string{AssignIPRange: "192.168.1.0/25"}, Defaults{}, []string{AssignIPRange, "not inside ip-range 192.168.0.0/24"}, AssignIPRange},
		{"assign wider", map[string]string{AssignIPRange: "192.168.0.0/23"}, Defaults{}, []string{AssignIPRange, "not inside"}, AssignIPRange},
		{"gateway syntax", map[string]string{AssignDefaultGateway: "gw"}, Defaults{}, []string{AssignDefaultGateway, `"gw"`}, AssignDefaultGateway},
		{"gateway outside", map[string]string{AssignDefaultGateway: "192.168.1.1"}, Defaults{}, []string{AssignDefaultGateway, "not a host address of ip-range"}, AssignDefaultGateway},
		{"gateway broadcast", map[string]string{AssignDefaultGateway: "192.168.0.255"}, Defaults{}, []string{AssignDefaultGateway}, AssignDefaultGateway},
		{"router selector", map[string]string{RouterSelector: "r"}, Defaults{}, []string{RouterSelector, "plain switch has no router", SwitchSelector}, RouterSelector},
		{"config assign outside annotation ip-range", map[string]string{IPRange: "10.1.0.0/24", AssignIPRange: ""}, Defaults{AssignIPRange: "10.2.0.0/24"},
			[]string{"annotation " + IPRange, "not inside"}, IPRange},
		{"bad config value", map[string]string{AssignDefaultGateway: ""}, Defaults{AssignDefaultGateway: "x"}, []string{"cloud-config loadBalancer.assignDefaultGateway", AssignDefaultGateway}, AssignDefaultGateway},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := map[string]string{}
			for k, v := range base {
				a[k] = v
			}
			for k, v := range c.set {
				if v == "" && k != AssignDefaultGateway {
					delete(a, k)
					continue
				}
				a[k] = v
			}
			if c.set[AssignDefaultGateway] == "" {
				delete(a, AssignDefaultGateway)
			}
			o, errs := Parse(svc(a), c.defaults)
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %v", errs)
			}
			for _, w := range c.want {
				if !strings.Contains(errs[0].Error(), w) {
					t.Errorf("error %q lacks %q", errs[0], w)
				}
			}
			var re *RelationError
			if !errors.As(errs[0], &re) || re.Annotation != c.ann {
				t.Errorf("error does not name annotation %s: %#v", c.ann, errs[0])
			}
			if o.Private != (Private{}) {
				t.Errorf("half-valid network kept: %+v", o.Private)
			}
		})
	}
	// Several at once.
	_, errs := Parse(svc(map[string]string{Type: "switch", IPRange: "x", AssignDefaultGateway: "y"}), Defaults{})
	if len(errs) != 3 {
		t.Fatalf("want 3 errors (ip-range, assign missing, gateway), got %v", errs)
	}
	// A typo in an internet Service's switch annotations is reported too.
	if _, errs := Parse(svc(map[string]string{IPRange: "nope"}), Defaults{}); len(errs) != 1 {
		t.Fatalf("typo on an internet Service not reported: %v", errs)
	}
}
