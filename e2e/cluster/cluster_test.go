package cluster

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestControlPlane starts etcd, kube-apiserver and kube-controller-manager,
// registers a Node, talks to it with the pinned kubectl, and checks that Stop
// leaves no process or directory behind.
func TestControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{ControllerManager: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)

	if _, err := c.RegisterNode(ctx, NodeSpec{Name: "node-a", InternalIP: "192.0.2.10"}); err != nil {
		t.Fatal(err)
	}
	n, err := c.Client.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != TaintUninitialized {
		t.Errorf("taints = %v, want the uninitialized taint only", n.Spec.Taints)
	}
	if n.Spec.ProviderID != "" {
		t.Errorf("providerID = %q, want empty before the CCM runs", n.Spec.ProviderID)
	}
	out, err := c.Kubectl(ctx, "get", "nodes", "-o", "name").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "node/node-a") {
		t.Errorf("kubectl get nodes: %v: %s", err, out)
	}
	// The CCM's identity is the chart's ServiceAccount, bound by the chart's RBAC.
	out, err = c.Kubectl(ctx, "auth", "can-i", "patch", "nodes", "--as", "system:serviceaccount:"+ChartNamespace+":"+ChartServiceAccount).Output()
	if err != nil || strings.TrimSpace(string(out)) != "yes" {
		t.Errorf("CCM may not patch nodes: %v: %s", err, out)
	}

	procs := c.Processes()
	dir := c.Dir
	c.Stop()
	for _, p := range procs {
		if err := syscall.Kill(p.Pid(), 0); err == nil {
			t.Errorf("%s (pid %d) still running after Stop", p.Name, p.Pid())
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop", dir)
	}
}
