package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// Every test runs the controller as the chart's ServiceAccount and fails on
// any "forbidden" in its log, so the suite as a whole proves the chart's RBAC
// is enough. This test proves the converse: take one rule away and the
// controller fails visibly instead of silently doing less.
func TestChartRBACMissingRuleFailsVisibly(t *testing.T) {
	roles := cp.Client.RbacV1().ClusterRoles()
	orig, err := roles.Get(t.Context(), cluster.ChartClusterRole, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's ClusterRole is not installed: %v", err)
	}
	var trimmed []rbacv1.PolicyRule
	removed := false
	for _, r := range orig.Rules {
		if slices.Contains(r.Resources, "services/status") {
			removed = true
			continue
		}
		trimmed = append(trimmed, r)
	}
	if !removed {
		t.Fatal("the chart's ClusterRole has no services/status rule to remove")
	}
	cut := orig.DeepCopy()
	cut.Rules = trimmed
	if _, err := roles.Update(t.Context(), cut, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Registered before newEnv, so it runs after the env's cleanup; t.Context()
	// is already cancelled by then.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cur, err := roles.Get(ctx, cluster.ChartClusterRole, metav1.GetOptions{})
		if err == nil {
			cur.Rules = orig.Rules
			_, err = roles.Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Errorf("restoring the chart's ClusterRole: %v", err)
		}
	})

	e := newEnv(t, envOptions{allowForbidden: true})
	e.createLBService("web")
	e.eventually(longWait, "the controller reports that RBAC forbids writing the Service status", func() (bool, error) {
		for _, line := range strings.Split(e.ccm.Log(), "\n") {
			if strings.Contains(line, "forbidden") && strings.Contains(line, "services/status") {
				return true, nil
			}
		}
		return false, nil
	})
	svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("status was written without the services/status rule: %v", svc.Status.LoadBalancer.Ingress)
	}
}
