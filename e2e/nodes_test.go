package e2e

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

func hasTaint(n *corev1.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}

func hasAddress(n *corev1.Node, addr string) bool {
	for _, a := range n.Status.Addresses {
		if a.Address == addr {
			return true
		}
	}
	return false
}

// TestNodeInitialization: a Node registered like kubelet --cloud-provider=external
// gets its providerID, addresses and topology labels, and loses the
// uninitialized taint.
func TestNodeInitialization(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, s := range e.top.Servers {
		srv := e.sakura.server(e.ctx, s.Name)
		wantID := fmt.Sprintf("sakuracloud://%s/%s", zone, srv.ID)
		var node *corev1.Node
		e.eventually(shortWait, "node "+s.Name+" not initialized", func() (bool, error) {
			n, err := e.kube.CoreV1().Nodes().Get(e.ctx, s.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			node = n
			return !hasTaint(n, cluster.TaintUninitialized) && n.Spec.ProviderID != "", nil
		})
		if node.Spec.ProviderID != wantID {
			t.Errorf("%s: providerID = %q, want %q", s.Name, node.Spec.ProviderID, wantID)
		}
		for _, n := range s.NICs {
			if !hasAddress(node, n.UserIPAddress) {
				t.Errorf("%s: addresses %v lack %s (NIC on %s)", s.Name, node.Status.Addresses, n.UserIPAddress, n.Switch)
			}
		}
		labels := map[string]string{
			corev1.LabelTopologyZone:   zone,
			corev1.LabelTopologyRegion: "is1",
			// "<cpu>core-<memory>gb", docs/configuration.md
			corev1.LabelInstanceTypeStable: fmt.Sprintf("%dcore-%dgb", s.CPU, s.Mem),
		}
		for k, want := range labels {
			if got := node.Labels[k]; got != want {
				t.Errorf("%s: label %s = %q, want %q", s.Name, k, got, want)
			}
		}
	}
}

// TestNodeShutdownTaint: powering a server off puts the shutdown taint on its
// Node (and does not delete it); powering it on removes the taint.
func TestNodeShutdownTaint(t *testing.T) {
	e := newEnv(t, envOptions{nodes: []string{"node-1", "node-2"}})
	e.waitInitialized("node-1", "node-2")
	srv := e.sakura.server(e.ctx, "node-1")
	if err := e.sim.PowerOff(e.ctx, srv.ID.String()); err != nil {
		t.Fatal(err)
	}
	e.eventually(shortWait, "node-1 did not get the shutdown taint", func() (bool, error) {
		n, err := e.kube.CoreV1().Nodes().Get(e.ctx, "node-1", metav1.GetOptions{})
		return err == nil && hasTaint(n, cluster.TaintShutdown), err
	})
	// A running server's Node never gets it (the old controller had this inverted).
	if n, err := e.kube.CoreV1().Nodes().Get(e.ctx, "node-2", metav1.GetOptions{}); err != nil || hasTaint(n, cluster.TaintShutdown) {
		t.Errorf("node-2 (running) has the shutdown taint or is gone: %v", err)
	}
	if err := e.sim.PowerOn(e.ctx, srv.ID.String()); err != nil {
		t.Fatal(err)
	}
	e.eventually(shortWait, "node-1 kept the shutdown taint after power-on", func() (bool, error) {
		n, err := e.kube.CoreV1().Nodes().Get(e.ctx, "node-1", metav1.GetOptions{})
		return err == nil && !hasTaint(n, cluster.TaintShutdown), err
	})
}

// TestNodeDeletedWithServer: deleting the server deletes its Node; the other
// Nodes stay.
func TestNodeDeletedWithServer(t *testing.T) {
	e := newEnv(t, envOptions{nodes: []string{"node-1", "node-2"}})
	e.waitInitialized("node-1", "node-2")
	e.deleteServerAndWaitForNode("node-2")
	if _, err := e.kube.CoreV1().Nodes().Get(e.ctx, "node-1", metav1.GetOptions{}); err != nil {
		t.Errorf("node-1 should stay: %v", err)
	}
}

func (e *env) waitInitialized(names ...string) {
	e.t.Helper()
	for _, name := range names {
		e.eventually(shortWait, "node "+name+" not initialized", func() (bool, error) {
			n, err := e.kube.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{})
			return err == nil && n.Spec.ProviderID != "" && !hasTaint(n, cluster.TaintUninitialized), err
		})
	}
}

// TestNodeWithoutMatchingServerIsKept: a Node without a providerID whose name
// no server carries (hostname differs from the server name) is kept, with a
// NoMatchingServer Warning naming the Node, the zone and the fix, while in the
// same run a Node whose server was deleted is deleted: the lifecycle
// controller is at work and tells the two apart.
func TestNodeWithoutMatchingServerIsKept(t *testing.T) {
	const stray = "host-without-server"
	e := newEnv(t, envOptions{nodes: []string{"node-1", "node-2", stray}})
	e.waitInitialized("node-1", "node-2")
	// The stray Node is NotReady (no server runs under its name), so the
	// lifecycle controller asks whether it exists on every pass.
	var msg string
	e.eventually(shortWait, "no NoMatchingServer Event on "+stray, func() (bool, error) {
		l, err := e.kube.CoreV1().Events("").List(e.ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + stray + ",reason=NoMatchingServer",
		})
		if err != nil || len(l.Items) == 0 {
			return false, err
		}
		if l.Items[0].Type != corev1.EventTypeWarning {
			return false, fmt.Errorf("event type %s, want Warning", l.Items[0].Type)
		}
		msg = l.Items[0].Message
		return true, nil
	})
	for _, want := range []string{`"` + stray + `"`, "zone " + zone, "--provider-id=sakuracloud://" + zone + "/<server ID>", "rename its server"} {
		if !strings.Contains(msg, want) {
			t.Errorf("event message %q lacks %q", msg, want)
		}
	}
	// Control: a Node whose server is deleted goes.
	e.deleteServerAndWaitForNode("node-2")
	n, err := e.kube.CoreV1().Nodes().Get(e.ctx, stray, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s was deleted: %v", stray, err)
	}
	if !hasTaint(n, cluster.TaintUninitialized) || n.Spec.ProviderID != "" {
		t.Errorf("%s: taints %v providerID %q, want still uninitialized", stray, n.Spec.Taints, n.Spec.ProviderID)
	}
	if ready := readyStatus(n); ready == corev1.ConditionTrue {
		t.Errorf("%s is Ready; the test needs it NotReady so the lifecycle controller checks it", stray)
	}
	if !strings.Contains(e.ccm.Log(), "Node matches no server; kept, not deleted") {
		t.Error("the controller's log lacks the NoMatchingServer line")
	}
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// deleteServerAndWaitForNode powers off and deletes name's server, then
// waits until the lifecycle controller has deleted its Node.
func (e *env) deleteServerAndWaitForNode(name string) {
	e.t.Helper()
	srv := e.sakura.server(e.ctx, name)
	if err := e.sim.PowerOff(e.ctx, srv.ID.String()); err != nil {
		e.t.Fatal(err)
	}
	if err := e.sim.DeleteServer(e.ctx, srv.ID.String()); err != nil {
		e.t.Fatal(err)
	}
	e.eventually(shortWait, name+" not deleted after its server was", func() (bool, error) {
		_, err := e.kube.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}
