package e2e

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The condition type and reasons as docs/load-balancers.md documents them
// (written out: the e2e module tests the documented contract).
const (
	conditionServing = "k8s.usacloud.jp/LoadBalancerServing"
	reasonServing    = "LoadBalancerServing"
)

// A Service's condition through the real binary and a real API server
// (server-side apply of the status with the controller's own field
// manager): serving with its address; an invalid annotation turns it to
// not serving, naming the annotation; fixed, serving again. The upstream
// service controller's status writes keep the condition.
func TestServiceConditionFollowsTheLoadBalancer(t *testing.T) {
	e := newEnv(t, envOptions{})
	svc := e.createLBService("web")
	ip := e.waitIngressIP("web")
	condition := func(status metav1.ConditionStatus, reason, contains string) {
		t.Helper()
		e.eventually(longWait, "condition "+string(status)+"/"+reason, func() (bool, error) {
			cur, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, svc.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, c := range cur.Status.Conditions {
				if c.Type == conditionServing {
					return c.Status == status && c.Reason == reason && strings.Contains(c.Message, contains), nil
				}
			}
			return false, nil
		})
	}
	condition(metav1.ConditionTrue, reasonServing, ip)

	patch := `{"metadata":{"annotations":{"k8s.usacloud.jp/load-balancer-ha":"yes"}}}`
	if _, err := e.kube.CoreV1().Services(e.ns).Patch(e.ctx, svc.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	condition(metav1.ConditionFalse, "InvalidAnnotation", "k8s.usacloud.jp/load-balancer-ha")

	patch = `{"metadata":{"annotations":{"k8s.usacloud.jp/load-balancer-ha":null}}}`
	if _, err := e.kube.CoreV1().Services(e.ns).Patch(e.ctx, svc.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	condition(metav1.ConditionTrue, reasonServing, ip)
	if got := e.serviceIP("web"); got != ip {
		t.Errorf("the address moved: %s, want %s", got, ip)
	}
}
