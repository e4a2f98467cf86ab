package adapter

import (
	"context"
	"testing"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/testcert"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/engine"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// tlsSecret makes a kubernetes.io/tls Secret with a fresh self-signed
// certificate for cn.
func tlsSecret(t *testing.T, name, cn string) *v1.Secret {
	t.Helper()
	certPEM, keyPEM, err := testcert.SelfSigned(cn)
	if err != nil {
		t.Fatal(err)
	}
	return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Type: v1.SecretTypeTLS,
		Data: map[string][]byte{v1.TLSCertKey: certPEM, v1.TLSPrivateKeyKey: keyPEM}}
}

// certWrites counts the certificate writes the simulator answered.
func (w *world) certWrites() int {
	n := 0
	for op, st := range w.sim.Requests().Operations {
		if op == "ProxyLB.SetCertificates" {
			n += st.Total
		}
	}
	return n
}

// TestTLSSecretSetAndRotated runs the engine against the simulator: the
// https port's certificate comes from the Secret and is set once; an
// unchanged Secret writes nothing; a rotated one is set again, once.
func TestTLSSecretSetAndRotated(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	kube := kubefake.NewClientset()
	eng := engine.New(engine.Deps{Client: w.client, Config: config.LoadBalancerConfig{}, ClusterID: "adapter", Kube: kube})
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: ktypes.UID("u1"), Annotations: map[string]string{
			annotations.Type: annotations.TypeEnhanced, annotations.ELBPortModes: "https", annotations.ELBTLSSecret: "web-tls"}},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: []v1.ServicePort{{Name: "https", Port: 443, NodePort: 30443, Protocol: v1.ProtocolTCP}}},
	}
	if _, err := kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := tlsSecret(t, "web-tls", "www.example.com")
	if _, err := kube.CoreV1().Secrets("default").Create(ctx, first, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nodes := []*v1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeExternalIP, Address: "198.51.100.11"}}}}}
	reconcile := func() (*v1.LoadBalancerStatus, error) {
		return eng.Reconcile(ctx, engine.Request{Trigger: decide.ByEnsure, Cluster: "adapter", Service: svc, Nodes: nodes})
	}

	st, err := reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Ingress) != 1 || st.Ingress[0].IP == "" || st.Ingress[0].IPMode == nil || *st.Ingress[0].IPMode != v1.LoadBalancerIPModeProxy {
		t.Fatalf("status = %+v", st)
	}
	elbs, err := w.elbs.Find(ctx, clusterTag, serviceTag)
	if err != nil || len(elbs) != 1 {
		t.Fatalf("ELBs = %v, %v", elbs, err)
	}
	info, _ := w.sim.ProxyLB(elbs[0].ID)
	if len(info.Certificates) != 1 || info.Certificates[0].CommonName != "www.example.com" || !info.Certificates[0].HasKey || w.certWrites() != 1 {
		t.Fatalf("certificates after the create: %+v (%d writes)", info.Certificates, w.certWrites())
	}
	notAfter := info.Certificates[0].NotAfter

	if _, err := reconcile(); err != nil {
		t.Fatal(err)
	}
	if n := w.certWrites(); n != 1 {
		t.Fatalf("unchanged certificates were written again (%d writes)", n)
	}

	time.Sleep(time.Second) // a new NotAfter, to tell the certificates apart
	rotated := tlsSecret(t, "web-tls", "www.example.com")
	if _, err := kube.CoreV1().Secrets("default").Update(ctx, rotated, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := reconcile(); err != nil {
		t.Fatal(err)
	}
	info, _ = w.sim.ProxyLB(elbs[0].ID)
	if n := w.certWrites(); n != 2 || !info.Certificates[0].NotAfter.After(notAfter) {
		t.Fatalf("after the rotation: %d writes, NotAfter %v (was %v)", n, info.Certificates[0].NotAfter, notAfter)
	}

	// Deleting the Service deletes the ELB, certificates and all.
	if err := eng.Delete(ctx, "adapter", svc); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.sim.ProxyLB(elbs[0].ID); ok {
		t.Fatal("the ELB outlived its Service")
	}
	if _, err := w.client.ProxyLBs.GetCertificates(ctx, elbs[0].ID); !sakuraapi.IsNotFound(err) {
		t.Fatalf("certificates still readable: %v", err)
	}
}
