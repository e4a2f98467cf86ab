package annotations

import (
	"errors"
	"os"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func svc(ann map[string]string) *v1.Service {
	return &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: ann}}
}

func TestParseDefaults(t *testing.T) {
	o, errs := Parse(svc(nil), Defaults{})
	if len(errs) != 0 {
		t.Fatalf("errs = %v", errs)
	}
	if o.Type != TypeInternet || o.Plan != PlanStandard || o.HA || o.HealthCheck.Protocol != ProtocolPing || o.HealthCheck.Interval != 10 {
		t.Fatalf("defaults wrong: %+v", o)
	}
	o, _ = Parse(svc(nil), Defaults{Plan: "premium", HA: true, Type: "Internet"})
	if o.Plan != PlanHighSpec || !o.HA || o.Type != TypeInternet {
		t.Fatalf("config defaults not applied: %+v", o)
	}
}

func TestParseValid(t *testing.T) {
	o, errs := Parse(svc(map[string]string{
		Plan: "premium", HA: "true", HealthCheckProtocol: "HTTP", HealthCheckPath: "/healthz",
		HealthCheckStatus: "204", HealthzInterval: "30", HealthCheckRetry: "5", HealthCheckTimeout: "30",
		SorryServer: "192.0.2.9", LoadBalancerIP: "192.0.2.10", RouterSelector: "a, b,", SwitchSelector: "c",
	}), Defaults{})
	if len(errs) != 0 {
		t.Fatalf("errs = %v", errs)
	}
	want := HealthCheck{Protocol: "http", Path: "/healthz", Status: 204, Interval: 30, Retry: 5, Timeout: 30}
	if o.HealthCheck != want || o.Plan != PlanHighSpec || !o.HA || o.SorryServer != "192.0.2.9" || o.IP != "192.0.2.10" {
		t.Fatalf("got %+v", o)
	}
	if strings.Join(o.RouterSelector, ",") != "a,b" || strings.Join(o.SwitchSelector, ",") != "c" {
		t.Fatalf("selectors %v %v", o.RouterSelector, o.SwitchSelector)
	}
}

func TestSpecLoadBalancerIPWins(t *testing.T) {
	s := svc(map[string]string{LoadBalancerIP: "192.0.2.10"})
	s.Spec.LoadBalancerIP = "192.0.2.11"
	o, errs := Parse(s, Defaults{})
	if len(errs) != 0 || o.IP != "192.0.2.11" {
		t.Fatalf("o.IP=%q errs=%v", o.IP, errs)
	}
}

// Every invalid value is reported with the annotation's name and allowed values.
func TestParseInvalid(t *testing.T) {
	cases := map[string]string{
		Type: "public", Plan: "gold", HA: "yes", LoadBalancerIP: "2001:db8::1",
		HealthCheckProtocol: "udp", HealthCheckPath: "healthz", HealthCheckStatus: "700",
		HealthzInterval: "5", HealthCheckRetry: "6", HealthCheckTimeout: "0", SorryServer: "host.example",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			_, errs := Parse(svc(map[string]string{name: value}), Defaults{})
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %v", errs)
			}
			var ae *Error
			if !errors.As(errs[0], &ae) || ae.Annotation != name || ae.Allowed != specOf(name).Allowed {
				t.Fatalf("error does not name annotation/allowed: %v", errs[0])
			}
			if !strings.Contains(errs[0].Error(), name) || !strings.Contains(errs[0].Error(), specOf(name).Allowed) {
				t.Fatalf("message %q lacks name or allowed values", errs[0])
			}
		})
	}
	// HA is strict: an empty value is an error, not "true".
	if _, errs := Parse(svc(map[string]string{HA: ""}), Defaults{}); len(errs) != 1 {
		t.Fatalf("empty HA accepted")
	}
	// Several bad annotations are all reported at once.
	if _, errs := Parse(svc(map[string]string{HA: "1", Plan: "x"}), Defaults{}); len(errs) != 2 {
		t.Fatalf("want 2 errors, got %v", errs)
	}
}

// docs/annotations.md must carry exactly the table generated from Table.
func TestDocsTableMatchesCode(t *testing.T) {
	const path = "../../docs/annotations.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	begin, end := strings.Index(doc, DocBegin), strings.Index(doc, DocEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the table markers", path)
	}
	want := DocBegin + "\n" + MarkdownTable() + DocEnd
	got := doc[begin : end+len(DocEnd)]
	if got == want {
		return
	}
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(doc[:begin]+want+doc[end+len(DocEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s is out of date with annotations.Table; run UPDATE_DOCS=1 go test ./loadbalancer/annotations", path)
}

func TestAdoptAndPreserve(t *testing.T) {
	o, errs := Parse(svc(map[string]string{AdoptID: " 113601234567 ", Preserve: "true"}), Defaults{})
	if len(errs) != 0 || o.AdoptID != "113601234567" || !o.Preserve {
		t.Fatalf("got %+v %v", o, errs)
	}
	_, errs = Parse(svc(map[string]string{AdoptID: "lb-1", Preserve: "yes"}), Defaults{})
	if len(errs) != 2 {
		t.Fatalf("want both refused, got %v", errs)
	}
	for _, e := range errs {
		if !strings.Contains(e.Error(), "allowed") {
			t.Errorf("error does not say what is allowed: %v", e)
		}
	}
	if p, err := PreserveOf(svc(nil)); p || err != nil {
		t.Fatalf("no annotation: %v %v", p, err)
	}
}

// The zone annotation takes one of the cluster's zones, and its error
// names them; without it the block's zone decides ("").
func TestZone(t *testing.T) {
	d := Defaults{Zones: []string{"is1a", "is1b"}}
	if o, errs := Parse(svc(nil), d); len(errs) != 0 || o.Zone != "" {
		t.Fatalf("no annotation: zone %q, errs %v", o.Zone, errs)
	}
	if o, errs := Parse(svc(map[string]string{Zone: " is1b "}), d); len(errs) != 0 || o.Zone != "is1b" {
		t.Fatalf("is1b: zone %q, errs %v", o.Zone, errs)
	}
	for _, bad := range []string{"tk1a", "IS1B", ""} {
		_, errs := Parse(svc(map[string]string{Zone: bad}), d)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), Zone) || !strings.Contains(errs[0].Error(), "is1a, is1b") {
			t.Errorf("%q: %v, want one error naming %s and the zones is1a, is1b", bad, errs, Zone)
		}
	}
}
