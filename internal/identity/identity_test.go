package identity

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const ns = "ccm-system"

var ctx = context.Background()

func TestExplicitWins(t *testing.T) {
	for _, c := range []struct {
		configured, flag string
		want             Identity
		ok               bool
	}{
		{"prod-1", "other", Identity{"prod-1", FromConfig}, true},
		{"kubernetes", "", Identity{"kubernetes", FromConfig}, true}, // kept, but not trusted
		{"", "prod-2", Identity{"prod-2", FromFlag}, true},
		{"", "kubernetes", Identity{}, false}, // the upstream default counts as unset
		{"", "", Identity{}, false},
	} {
		got, ok := Explicit(c.configured, c.flag)
		if got != c.want || ok != c.ok {
			t.Errorf("Explicit(%q, %q) = %v, %v; want %v, %v", c.configured, c.flag, got, ok, c.want, c.ok)
		}
	}
	if Trusted("kubernetes") || Trusted("") || !Trusted("prod-1") {
		t.Error("Trusted")
	}
	// An explicit ID needs no API server.
	if id, err := Resolve(ctx, nil, ns, "", "prod-2"); err != nil || id.ID != "prod-2" {
		t.Errorf("Resolve explicit: %v %v", id, err)
	}
}

func TestDerivedOnceThenReadBack(t *testing.T) {
	kube := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: "uid-aaaa"}})
	id, err := Resolve(ctx, kube, ns, "", "kubernetes")
	if err != nil || id != (Identity{"uid-aaaa", FromDerived}) || !id.Trusted() {
		t.Fatalf("first start: %v %v", id, err)
	}
	cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil || cm.Data[ConfigMapKey] != "uid-aaaa" {
		t.Fatalf("record: %v %v", cm, err)
	}
	// kube-system re-created (or the cluster restored elsewhere): the record
	// wins, so what the cluster owns stays owned.
	ks, _ := kube.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	ks.UID = "uid-bbbb"
	if _, err := kube.CoreV1().Namespaces().Update(ctx, ks, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	id, err = Resolve(ctx, kube, ns, "", "")
	if err != nil || id != (Identity{"uid-aaaa", FromRecord}) {
		t.Fatalf("second start: %v %v", id, err)
	}
	// An explicit ID is used as given, the record is left alone.
	if id, _ := Resolve(ctx, kube, ns, "prod-1", ""); id.ID != "prod-1" {
		t.Errorf("explicit with a record: %v", id)
	}
}

func TestRaceLosesToTheFirstRecord(t *testing.T) {
	kube := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: "uid-mine"}})
	// Another replica writes its record between our read and our create.
	kube.PrependReactor("create", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: ns},
			Data: map[string]string{ConfigMapKey: "uid-theirs"}}
		if err := kube.Tracker().Add(other); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "configmaps"}, ConfigMapName)
	})
	id, err := Resolve(ctx, kube, ns, "", "")
	if err != nil || id.ID != "uid-theirs" {
		t.Fatalf("%v %v", id, err)
	}
}

func TestForbiddenFailsAtOnceNamingWhat(t *testing.T) {
	kube := fake.NewClientset()
	calls := 0
	kube.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "kube-system", errors.New("RBAC"))
	})
	_, err := Resolve(ctx, kube, ns, "", "kubernetes")
	if err == nil || calls != 1 || !strings.Contains(err.Error(), "reading namespace kube-system") ||
		!strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "--cluster-name") {
		t.Errorf("calls=%d err=%v", calls, err)
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	saved := Backoff
	Backoff = wait.Backoff{Duration: 1, Steps: 5}
	t.Cleanup(func() { Backoff = saved })
	kube := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: "uid-x"}})
	fails := 2
	kube.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fails > 0 {
			fails--
			return true, nil, apierrors.NewServiceUnavailable("starting")
		}
		return false, nil, nil
	})
	if id, err := Resolve(ctx, kube, ns, "", ""); err != nil || id.ID != "uid-x" {
		t.Fatalf("%v %v", id, err)
	}
	// Always down: the last error is returned once the attempts are spent.
	kube2 := fake.NewClientset()
	kube2.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("down")
	})
	if _, err := Resolve(ctx, kube2, ns, "", ""); err == nil || !strings.Contains(err.Error(), "down") {
		t.Errorf("always down: %v", err)
	}
}

func TestEmptyRecordIsRefused(t *testing.T) {
	kube := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: "uid-x"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: ns}})
	if _, err := Resolve(ctx, kube, ns, "", ""); err == nil || !strings.Contains(err.Error(), "set clusterID explicitly") {
		t.Errorf("%v", err)
	}
}

// An install from before derived IDs (clusterName kubernetes) upgraded with
// the new empty default: its Services own appliances under "kubernetes".
// Deriving a new ID would give every Service a new appliance and a new
// address; the shared ID is kept and recorded instead (and stays
// untrusted: the sweep only reports).
func TestLegacyAppliancesKeepTheSharedID(t *testing.T) {
	for _, c := range []struct {
		name   string
		inUse  bool
		want   Identity
		checks int
	}{
		{"the cluster owns appliances under kubernetes", true, Identity{LegacyDefault, FromLegacy}, 1},
		{"it owns none", false, Identity{"uid-new", FromDerived}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			kube := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: "uid-new"}})
			checks := 0
			legacy := func(context.Context) (bool, error) { checks++; return c.inUse, nil }
			id, err := ResolveWith(ctx, kube, ns, "", "", legacy)
			if err != nil || id != c.want || checks != c.checks {
				t.Fatalf("got %v (err %v, %d checks), want %v", id, err, checks, c.want)
			}
			if id.Trusted() == (c.want.ID == LegacyDefault) {
				t.Fatalf("trusted %v for %q", id.Trusted(), id.ID)
			}
			// Recorded: the next start reads it back without asking again.
			again, err := ResolveWith(ctx, kube, ns, "", "", legacy)
			if err != nil || again.ID != c.want.ID || again.Source != FromRecord || checks != c.checks {
				t.Fatalf("second start: %v (err %v, %d checks)", again, err, checks)
			}
		})
	}
}
