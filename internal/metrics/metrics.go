// Package metrics exposes the controller's own Prometheus metrics on the
// cloud-controller-manager's existing /metrics endpoint (the component-base
// legacy registry). Names are listed once, in Names, and docs/metrics.md is
// tested against that list.
package metrics

import (
	"sync"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

const namespace = "sakuracloud_ccm"

var (
	apiRequests = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "api_requests_total",
		Help:           "SAKURA Cloud API requests by operation and result (ok, not_found, throttled, unavailable, error). Each retry counts as a request.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"operation", "result"})

	apiLatency = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace:      namespace,
		Name:           "api_request_duration_seconds",
		Help:           "Duration of one SAKURA Cloud API request by operation, not counting the wait for the request budget.",
		Buckets:        []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		StabilityLevel: metrics.ALPHA,
	}, []string{"operation"})

	apiRetries = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "api_retries_total",
		Help:           "SAKURA Cloud API requests retried, by operation and the answer that caused the retry (throttled = 429, unavailable = 503/423).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"operation", "reason"})

	blockAddresses = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "block_addresses",
		Help:           "Usable addresses of a router+switch block or switch range by zone and state (free, used), as of the last address search.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"zone", "switch", "state"})

	reconcileErrors = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "reconcile_errors_total",
		Help:           "Load balancer reconciliations that failed, by the Event reason reported on the Service.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})

	managedLoadBalancers = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "managed_load_balancers",
		Help:           "Load balancer appliances carrying this cluster's ownership tag, as of the last sweep.",
		StabilityLevel: metrics.ALPHA,
	})

	sweptLoadBalancers = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "swept_load_balancers_total",
		Help:           "Orphaned load balancer appliances (their Service is gone) removed by the sweep (action=deleted), shared appliances cleared of vanished members' entries (action=pruned), or, in report mode, found and left alone (action=reported).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"action"})

	realServers = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "real_servers",
		Help:           "Real servers of this cluster's load balancers by the appliances' own health check (state=up|down), as of the last health poll.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"state"})

	clusterIdentity = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "cluster_identity",
		Help:           "1 for the cluster ID in force: source (config, flag, recorded, derived) and trusted (false for the shared default \"kubernetes\", under which the sweep only reports).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"source", "trusted"})

	sweepRefused = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "sweep_delete_refused",
		Help:           "1 when loadBalancer.sweepMode is delete but the sweep only reports because the cluster ID is not trusted (the shared default \"kubernetes\").",
		StabilityLevel: metrics.ALPHA,
	})

	repairs = metrics.NewCounter(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "load_balancer_repairs_total",
		Help:           "Load balancers brought back in line after a change outside the controller: re-created, booted, rewritten, entries restored, or saved settings applied (each one a LoadBalancerRepaired Event).",
		StabilityLevel: metrics.ALPHA,
	})

	endpointResyncs = metrics.NewCounter(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "endpoint_resyncs_total",
		Help:           "Re-syncs of externalTrafficPolicy: Local Services because the set of nodes running their ready endpoints changed.",
		StabilityLevel: metrics.ALPHA,
	})
)

// Names lists every metric this package exports (without the namespace).
var Names = []string{
	"api_requests_total", "api_request_duration_seconds", "api_retries_total",
	"block_addresses", "reconcile_errors_total",
	"managed_load_balancers", "swept_load_balancers_total",
	"real_servers", "endpoint_resyncs_total", "cluster_identity", "sweep_delete_refused",
	"load_balancer_repairs_total",
}

// Namespace is the prefix of every metric name.
const Namespace = namespace

var registerOnce sync.Once

// Register adds the metrics to the legacy registry; safe to call repeatedly.
func Register() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(apiRequests, apiLatency, apiRetries, blockAddresses, reconcileErrors,
			managedLoadBalancers, sweptLoadBalancers, realServers, endpointResyncs, clusterIdentity, sweepRefused, repairs)
	})
}

// APIObserver feeds API call counts into the metrics; it implements
// sakuraapi.Observer.
type APIObserver struct{}

// ObserveCall records one API request.
func (APIObserver) ObserveCall(op, result string, d time.Duration) {
	apiRequests.WithLabelValues(op, result).Inc()
	apiLatency.WithLabelValues(op).Observe(d.Seconds())
}

// ObserveRetry records one retry.
func (APIObserver) ObserveRetry(op, reason string) {
	apiRetries.WithLabelValues(op, reason).Inc()
}

// SetBlockAddresses reports the free and used usable addresses of a switch
// of zone.
func SetBlockAddresses(zone, switchID string, free, used int) {
	blockAddresses.WithLabelValues(zone, switchID, "free").Set(float64(free))
	blockAddresses.WithLabelValues(zone, switchID, "used").Set(float64(used))
}

// CountReconcileError records a failed reconciliation by its Event reason.
func CountReconcileError(reason string) { reconcileErrors.WithLabelValues(reason).Inc() }

// Sweep actions, the values of swept_load_balancers_total's label.
const (
	SweepDeleted  = "deleted"
	SweepReported = "reported"
	// SweepPruned: a shared appliance lost the entries of vanished Services.
	SweepPruned = "pruned"
)

// SetManagedLoadBalancers reports how many appliances carry the cluster's tag.
func SetManagedLoadBalancers(n int) { managedLoadBalancers.Set(float64(n)) }

// CountSwept records one orphan deleted or reported by the sweep.
func CountSwept(action string) { sweptLoadBalancers.WithLabelValues(action).Inc() }

// SetRealServers reports real servers up and down by the appliances' health check.
func SetRealServers(up, down int) {
	realServers.WithLabelValues("up").Set(float64(up))
	realServers.WithLabelValues("down").Set(float64(down))
}

// CountEndpointResync records one endpoint-driven re-sync.
func CountEndpointResync() { endpointResyncs.Inc() }

// CountRepair counts one LoadBalancerRepaired.
func CountRepair() { repairs.Inc() }

// SetClusterIdentity reports where the cluster ID in force came from and
// whether the sweep may delete under it.
func SetClusterIdentity(source string, trusted bool) {
	clusterIdentity.Reset()
	t := "false"
	if trusted {
		t = "true"
	}
	clusterIdentity.WithLabelValues(source, t).Set(1)
}

// SetSweepRefused reports that the sweep was held to report-only.
func SetSweepRefused(refused bool) {
	v := 0.0
	if refused {
		v = 1
	}
	sweepRefused.Set(v)
}
