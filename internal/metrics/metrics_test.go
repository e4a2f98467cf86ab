package metrics

import (
	"strings"
	"testing"
	"time"

	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/doccheck"
)

func TestObserverFeedsRegistry(t *testing.T) {
	Register()
	Register() // idempotent
	o := APIObserver{}
	o.ObserveCall("LoadBalancer.Create", "ok", 120*time.Millisecond)
	o.ObserveCall("LoadBalancer.Create", "throttled", 5*time.Millisecond)
	o.ObserveRetry("LoadBalancer.Create", "throttled")
	SetBlockAddresses("is1a", "113000000001", 8, 3)
	CountReconcileError("UnsupportedProtocol")
	SetManagedLoadBalancers(3)
	CountSwept(SweepDeleted)
	CountSwept(SweepDeleted)
	CountSwept(SweepReported)
	SetRealServers(5, 1)
	CountEndpointResync()
	SetClusterIdentity("derived", true)
	SetClusterIdentity("config", false) // replaces the previous one
	SetSweepRefused(true)
	CountRepair()
	CountRepair()

	want := `
# HELP sakuracloud_ccm_api_requests_total [ALPHA] SAKURA Cloud API requests by operation and result (ok, not_found, throttled, unavailable, error). Each retry counts as a request.
# TYPE sakuracloud_ccm_api_requests_total counter
sakuracloud_ccm_api_requests_total{operation="LoadBalancer.Create",result="ok"} 1
sakuracloud_ccm_api_requests_total{operation="LoadBalancer.Create",result="throttled"} 1
# HELP sakuracloud_ccm_api_retries_total [ALPHA] SAKURA Cloud API requests retried, by operation and the answer that caused the retry (throttled = 429, unavailable = 503/423).
# TYPE sakuracloud_ccm_api_retries_total counter
sakuracloud_ccm_api_retries_total{operation="LoadBalancer.Create",reason="throttled"} 1
# HELP sakuracloud_ccm_block_addresses [ALPHA] Usable addresses of a router+switch block or switch range by zone and state (free, used), as of the last address search.
# TYPE sakuracloud_ccm_block_addresses gauge
sakuracloud_ccm_block_addresses{state="free",switch="113000000001",zone="is1a"} 8
sakuracloud_ccm_block_addresses{state="used",switch="113000000001",zone="is1a"} 3
# HELP sakuracloud_ccm_reconcile_errors_total [ALPHA] Load balancer reconciliations that failed, by the Event reason reported on the Service.
# TYPE sakuracloud_ccm_reconcile_errors_total counter
sakuracloud_ccm_reconcile_errors_total{reason="UnsupportedProtocol"} 1
# HELP sakuracloud_ccm_managed_load_balancers [ALPHA] Load balancer appliances carrying this cluster's ownership tag, as of the last sweep.
# TYPE sakuracloud_ccm_managed_load_balancers gauge
sakuracloud_ccm_managed_load_balancers 3
# HELP sakuracloud_ccm_swept_load_balancers_total [ALPHA] Orphaned load balancer appliances (their Service is gone) removed by the sweep (action=deleted), shared appliances cleared of vanished members' entries (action=pruned), or, in report mode, found and left alone (action=reported).
# TYPE sakuracloud_ccm_swept_load_balancers_total counter
sakuracloud_ccm_swept_load_balancers_total{action="deleted"} 2
sakuracloud_ccm_swept_load_balancers_total{action="reported"} 1
# HELP sakuracloud_ccm_real_servers [ALPHA] Real servers of this cluster's load balancers by the appliances' own health check (state=up|down), as of the last health poll.
# TYPE sakuracloud_ccm_real_servers gauge
sakuracloud_ccm_real_servers{state="down"} 1
sakuracloud_ccm_real_servers{state="up"} 5
# HELP sakuracloud_ccm_endpoint_resyncs_total [ALPHA] Re-syncs of externalTrafficPolicy: Local Services because the set of nodes running their ready endpoints changed.
# TYPE sakuracloud_ccm_endpoint_resyncs_total counter
sakuracloud_ccm_endpoint_resyncs_total 1
# HELP sakuracloud_ccm_cluster_identity [ALPHA] 1 for the cluster ID in force: source (config, flag, recorded, derived) and trusted (false for the shared default "kubernetes", under which the sweep only reports).
# TYPE sakuracloud_ccm_cluster_identity gauge
sakuracloud_ccm_cluster_identity{source="config",trusted="false"} 1
# HELP sakuracloud_ccm_sweep_delete_refused [ALPHA] 1 when loadBalancer.sweepMode is delete but the sweep only reports because the cluster ID is not trusted (the shared default "kubernetes").
# TYPE sakuracloud_ccm_sweep_delete_refused gauge
sakuracloud_ccm_sweep_delete_refused 1
# HELP sakuracloud_ccm_load_balancer_repairs_total [ALPHA] Load balancers brought back in line after a change outside the controller: re-created, booted, rewritten, entries restored, or saved settings applied (each one a LoadBalancerRepaired Event).
# TYPE sakuracloud_ccm_load_balancer_repairs_total counter
sakuracloud_ccm_load_balancer_repairs_total 2
`
	names := []string{}
	for _, n := range Names {
		if n != "api_request_duration_seconds" {
			names = append(names, Namespace+"_"+n)
		}
	}
	if err := testutil.GatherAndCompare(legacyregistry.DefaultGatherer, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GetHistogramMetricCount(apiLatency.WithLabelValues("LoadBalancer.Create")); err != nil || n != 2 {
		t.Fatalf("latency histogram count = %d, %v; want 2", n, err)
	}
}

// TestDocsListEveryMetric keeps docs/metrics.md in step with the code.
func TestDocsListEveryMetric(t *testing.T) {
	var full []string
	for _, n := range Names {
		full = append(full, Namespace+"_"+n)
	}
	doccheck.MentionsAll(t, "docs/metrics.md", "`%s`", full...)
}
