package chart

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
)

var monitoringOn = []string{
	"--set", "monitoring.serviceMonitor.enabled=true",
	"--set", "monitoring.prometheusRule.enabled=true",
	"--set", "monitoring.scraperRBAC.create=true",
	"--set", "monitoring.scraperRBAC.subjects[0].kind=ServiceAccount",
	"--set", "monitoring.scraperRBAC.subjects[0].name=prometheus-k8s",
	"--set", "monitoring.scraperRBAC.subjects[0].namespace=monitoring",
	"--set", "monitoring.prometheusRule.additionalLabels.team=platform",
}

// Metrics the alerts may use besides the controller's own: the scrape's up
// and client-go's leader election gauge (component-base, registered by the
// controller's main).
var foreignMetrics = []string{"up", "leader_election_master_status"}

// TestMonitoringOff: none of it by default, so clusters without the
// Prometheus Operator's CRDs install the chart.
func TestMonitoringOff(t *testing.T) {
	for name := range render(t, tokenValues...) {
		if strings.HasPrefix(name, "ServiceMonitor/") || strings.HasPrefix(name, "PrometheusRule/") ||
			strings.HasPrefix(name, "Service/") || strings.Contains(name, "metrics-reader") {
			t.Errorf("%s rendered by default", name)
		}
	}
}

// TestMonitoringRendered checks the ServiceMonitor scrapes the controller's
// HTTPS port with a token, the scraper may GET /metrics, and every alert
// uses only metrics that exist and is explained in docs/alerts.md.
func TestMonitoringRendered(t *testing.T) {
	objs := render(t, append(append([]string{}, tokenValues...), monitoringOn...)...)
	svc := objs["Service/ccm-sakura-cloud-controller-manager-metrics"]
	if dig(svc, "spec", "clusterIP") != "None" || dig(svc, "spec", "ports", 0, "port") != float64(10258) ||
		dig(svc, "spec", "selector", "app.kubernetes.io/instance") != "ccm" {
		t.Errorf("metrics Service = %v", svc)
	}
	sm := objs["ServiceMonitor/ccm-sakura-cloud-controller-manager"]
	if dig(sm, "apiVersion") != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %v", dig(sm, "apiVersion"))
	}
	ep := dig(sm, "spec", "endpoints", 0)
	if dig(ep, "port") != "https" || dig(ep, "scheme") != "https" || dig(ep, "path") != "/metrics" ||
		dig(ep, "bearerTokenFile") == nil || dig(ep, "tlsConfig", "insecureSkipVerify") != true {
		t.Errorf("ServiceMonitor endpoint = %v", ep)
	}
	if dig(sm, "spec", "selector", "matchLabels", "app.kubernetes.io/instance") != "ccm" {
		t.Errorf("ServiceMonitor selector = %v", dig(sm, "spec", "selector"))
	}
	role := objs["ClusterRole/ccm-sakura-cloud-controller-manager-metrics-reader"]
	if dig(role, "rules", 0, "nonResourceURLs", 0) != "/metrics" || dig(role, "rules", 0, "verbs", 0) != "get" {
		t.Errorf("scraper ClusterRole = %v", role)
	}
	binding := objs["ClusterRoleBinding/ccm-sakura-cloud-controller-manager-metrics-reader"]
	if dig(binding, "subjects", 0, "name") != "prometheus-k8s" || dig(binding, "roleRef", "name") != "ccm-sakura-cloud-controller-manager-metrics-reader" {
		t.Errorf("scraper ClusterRoleBinding = %v", binding)
	}

	rule := objs["PrometheusRule/ccm-sakura-cloud-controller-manager"]
	rules, _ := dig(rule, "spec", "groups", 0, "rules").([]any)
	docs, err := os.ReadFile(filepath.Join(chartDir(t), "..", "..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	token := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords := []string{"sum", "by", "rate", "increase", "absent", "count", "unless", "on", "max", "job", "state", "result", "action", "reason", "m", "h", "free", "down", "throttled", "unavailable", "error"}
	for _, r := range rules {
		alert, _ := dig(r, "alert").(string)
		expr, _ := dig(r, "expr").(string)
		alerts = append(alerts, alert)
		if dig(r, "labels", "severity") == nil || dig(r, "labels", "team") != "platform" {
			t.Errorf("%s: labels %v, want a severity and the additional labels", alert, dig(r, "labels"))
		}
		if !strings.Contains(expr, `job="ccm-sakura-cloud-controller-manager-metrics"`) {
			t.Errorf("%s selects no job of this release: %s", alert, expr)
		}
		// Strip label matchers' values and check every remaining name.
		names := token.FindAllString(regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, ""), -1)
		for _, n := range names {
			switch {
			case slices.Contains(keywords, n), slices.Contains(foreignMetrics, n):
			case strings.HasPrefix(n, metrics.Namespace+"_"):
				if !slices.Contains(metrics.Names, strings.TrimPrefix(n, metrics.Namespace+"_")) {
					t.Errorf("%s uses %s, which the controller does not export", alert, n)
				}
			default:
				t.Errorf("%s uses %q, neither a metric of the controller nor a known one", alert, n)
			}
		}
		if !strings.Contains(string(docs), "## "+alert+"\n") {
			t.Errorf("docs/alerts.md has no section ## %s", alert)
		}
		if !strings.Contains(dig(r, "annotations", "description").(string), "docs/alerts.md#"+strings.ToLower(alert)) {
			t.Errorf("%s does not link its docs section", alert)
		}
	}
	for _, want := range []string{"SakuraCCMDown", "SakuraCCMNoLeader", "SakuraCCMAddressBlockNearlyExhausted",
		"SakuraCCMAPIThrottled", "SakuraCCMAPIErrors", "SakuraCCMRealServersDown", "SakuraCCMSweepActing"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s among %v", want, alerts)
		}
	}
}

// promOperatorCRDs are stand-ins for the Prometheus Operator's CRDs: the
// kinds and scope, without their schemas. They let the API server take the
// chart's objects, which proves names, kinds and namespaces; the Service and
// RBAC are checked for real.
const promOperatorCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: servicemonitors, singular: servicemonitor, kind: ServiceMonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: prometheusrules, singular: prometheusrule, kind: PrometheusRule, listKind: PrometheusRuleList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

// TestMonitoringInstalls applies the chart with monitoring on to a real API
// server and checks that the scraper's ServiceAccount may GET /metrics (the
// controller's delegated authorization asks exactly this) and nobody else.
func TestMonitoringInstalls(t *testing.T) {
	c := controlPlane(t)
	if out, err := kubectl(t, c, []byte(promOperatorCRDs), "apply", "-f", "-"); err != nil {
		t.Fatalf("CRDs: %v\n%s", err, out)
	}
	if out, err := kubectl(t, c, nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"); err != nil {
		t.Fatalf("CRDs not established: %v\n%s", err, out)
	}
	install(t, c, "mon", append([]string{"--set", "replicaCount=1"}, monitoringOn...)...)
	for _, obj := range []string{"servicemonitor/mon-sakura-cloud-controller-manager", "prometheusrule/mon-sakura-cloud-controller-manager",
		"service/mon-sakura-cloud-controller-manager-metrics"} {
		if out, err := kubectl(t, c, nil, "-n", "kube-system", "get", obj); err != nil {
			t.Errorf("%s: %v\n%s", obj, err, out)
		}
	}
	canGet := func(as string) string {
		out, _ := kubectl(t, c, nil, "auth", "can-i", "get", "/metrics", "--as", as)
		return strings.TrimSpace(out)
	}
	if got := canGet("system:serviceaccount:monitoring:prometheus-k8s"); got != "yes" {
		t.Errorf("the scraper may not GET /metrics: %q", got)
	}
	if got := canGet("system:serviceaccount:monitoring:someone-else"); got != "no" {
		t.Errorf("another ServiceAccount may GET /metrics: %q", got)
	}
}
