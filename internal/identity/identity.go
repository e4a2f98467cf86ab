// Package identity decides the cluster ID that tags and finds what this
// cluster owns in SAKURA Cloud. An ID configured explicitly (clusterID,
// SAKURACLOUD_CLUSTER_ID, or a --cluster-name other than the upstream
// default "kubernetes") is used as given. Otherwise the ID is derived from
// the kube-system namespace's UID, which no two clusters share, and recorded
// in a ConfigMap so that it never changes afterwards, even if the namespace
// were re-created or the cluster restored elsewhere: the recorded value wins
// over a fresh derivation.
package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

const (
	// LegacyDefault is the upstream default of --cluster-name and the
	// earlier chart's default clusterName: clusters installed with defaults
	// all share it, so it identifies nothing. It is never derived from, and
	// an explicit clusterID of this value is used (appliances already carry
	// it) but not trusted: the sweep only reports under it.
	LegacyDefault = "kubernetes"
	// ConfigMapName is the ConfigMap, in the controller's namespace (the
	// leader-election namespace), that records a derived ID.
	ConfigMapName = "sakura-cloud-controller-manager-cluster-id"
	// ConfigMapKey holds the ID in the ConfigMap's data.
	ConfigMapKey = "clusterID"
	// SourceNamespace is the namespace whose UID a derived ID is.
	SourceNamespace = metav1.NamespaceSystem
)

// Source says where the ID came from.
type Source string

const (
	// FromConfig: clusterID in the cloud-config or SAKURACLOUD_CLUSTER_ID.
	FromConfig Source = "config"
	// FromFlag: --cluster-name (other than LegacyDefault).
	FromFlag Source = "flag"
	// FromRecord: read back from the ConfigMap written by an earlier start.
	FromRecord Source = "recorded"
	// FromDerived: the kube-system UID, recorded by this start.
	FromDerived Source = "derived"
	// FromLegacy: nothing was configured, but this cluster's Services
	// already own appliances tagged LegacyDefault (an install from before
	// derived IDs, upgraded with the new empty default): LegacyDefault is
	// kept and recorded, so those Services keep their appliances and
	// addresses instead of getting new ones.
	FromLegacy Source = "legacy"
)

// LegacyCheck reports whether this cluster's Services already own
// appliances tagged with LegacyDefault.
type LegacyCheck func(ctx context.Context) (bool, error)

// Identity is the cluster ID in force and why.
type Identity struct {
	ID     string
	Source Source
}

// Trusted is false for an ID that other clusters may share (LegacyDefault):
// the sweep must not delete under it.
func (i Identity) Trusted() bool { return Trusted(i.ID) }

// Trusted is false for "" and LegacyDefault.
func Trusted(id string) bool { return id != "" && id != LegacyDefault }

// Explicit returns the configured identity (clusterID from the cloud-config or
// the environment first, then --cluster-name unless it is LegacyDefault), or
// ok=false when nothing was configured and the ID has to be derived.
func Explicit(configured, clusterName string) (Identity, bool) {
	if configured != "" {
		return Identity{ID: configured, Source: FromConfig}, true
	}
	if clusterName != "" && clusterName != LegacyDefault {
		return Identity{ID: clusterName, Source: FromFlag}, true
	}
	return Identity{}, false
}

// Backoff paces Resolve's attempts while the API server is unreachable at
// start: about two minutes in all, then the process exits and restarts.
var Backoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 8, Cap: 30 * time.Second}

// Resolve returns the explicit identity if there is one; otherwise the ID
// recorded in namespace/ConfigMapName, or, when none is recorded yet, the
// kube-system UID, which it records (a concurrent replica's record wins a
// race). Transient API errors are retried with Backoff; a refusal (RBAC) is
// returned at once, naming what is missing.
func Resolve(ctx context.Context, kube kubernetes.Interface, namespace, configured, clusterName string) (Identity, error) {
	return ResolveWith(ctx, kube, namespace, configured, clusterName, nil)
}

// ResolveWith is Resolve that, before deriving a new ID, asks legacy
// (when set) whether this cluster already owns appliances under
// LegacyDefault; if so, that ID is recorded instead (FromLegacy).
func ResolveWith(ctx context.Context, kube kubernetes.Interface, namespace, configured, clusterName string, legacy LegacyCheck) (Identity, error) {
	if id, ok := Explicit(configured, clusterName); ok {
		return id, nil
	}
	if kube == nil {
		return Identity{}, errors.New("no cluster ID configured and no Kubernetes client to derive one with")
	}
	var out Identity
	var lastErr error
	err := wait.ExponentialBackoffWithContext(ctx, Backoff, func(ctx context.Context) (bool, error) {
		id, err := resolveOnce(ctx, kube, namespace, legacy)
		if err == nil {
			out = id
			return true, nil
		}
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsInvalid(err) || errors.Is(err, errBadRecord) {
			return false, err
		}
		lastErr = err
		klog.InfoS("Cluster ID not resolved yet; retrying", "err", err.Error())
		return false, nil
	})
	if err != nil {
		if lastErr != nil && wait.Interrupted(err) {
			err = lastErr
		}
		return Identity{}, fmt.Errorf("deriving the cluster ID (no clusterID, SAKURACLOUD_CLUSTER_ID or --cluster-name other than %q is set): %w", LegacyDefault, err)
	}
	return out, nil
}

var errBadRecord = errors.New("recorded cluster ID is empty")

func resolveOnce(ctx context.Context, kube kubernetes.Interface, namespace string, legacy LegacyCheck) (Identity, error) {
	cms := kube.CoreV1().ConfigMaps(namespace)
	if id, err := readRecord(ctx, cms.Get); err == nil || !apierrors.IsNotFound(err) {
		return id, err
	}
	want := Identity{Source: FromDerived}
	if legacy != nil {
		inUse, err := legacy(ctx)
		if err != nil {
			return Identity{}, fmt.Errorf("looking for appliances this cluster owns under %q: %w", LegacyDefault, err)
		}
		if inUse {
			want = Identity{ID: LegacyDefault, Source: FromLegacy}
		}
	}
	if want.ID == "" {
		ns, err := kube.CoreV1().Namespaces().Get(ctx, SourceNamespace, metav1.GetOptions{})
		if err != nil {
			return Identity{}, fmt.Errorf("reading namespace %s: %w", SourceNamespace, err)
		}
		if ns.UID == "" {
			return Identity{}, fmt.Errorf("namespace %s has no UID", SourceNamespace)
		}
		want.ID = string(ns.UID)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "sakura-cloud-controller-manager"},
			Annotations: map[string]string{"k8s.usacloud.jp/note": "The cluster ID that tags this cluster's SAKURA Cloud resources, " +
				"derived once from the UID of namespace " + SourceNamespace + ". Do not change or delete it: the controller would no longer own what it made."}},
		Data: map[string]string{ConfigMapKey: want.ID},
	}
	_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	switch {
	case err == nil && want.Source == FromLegacy:
		klog.InfoS("This cluster's Services own appliances tagged with the shared default cluster ID; keeping it (recorded) so they keep their addresses",
			"clusterID", want.ID, "configMap", namespace+"/"+ConfigMapName)
		return want, nil
	case err == nil:
		klog.InfoS("Derived the cluster ID from the kube-system namespace and recorded it", "clusterID", want.ID,
			"configMap", namespace+"/"+ConfigMapName)
		return want, nil
	case apierrors.IsAlreadyExists(err):
		// Another replica recorded it first: its record counts.
		return readRecord(ctx, cms.Get)
	default:
		return Identity{}, fmt.Errorf("recording the cluster ID in ConfigMap %s/%s: %w", namespace, ConfigMapName, err)
	}
}

func readRecord(ctx context.Context, get func(context.Context, string, metav1.GetOptions) (*corev1.ConfigMap, error)) (Identity, error) {
	cm, err := get(ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		return Identity{}, err
	}
	id := cm.Data[ConfigMapKey]
	if id == "" {
		return Identity{}, fmt.Errorf("ConfigMap %s/%s: %w (key %s); restore it or set clusterID explicitly",
			cm.Namespace, cm.Name, errBadRecord, ConfigMapKey)
	}
	return Identity{ID: id, Source: FromRecord}, nil
}
