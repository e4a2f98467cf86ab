// Package chart tests the helm chart: lint, rendered manifests for default
// and custom values, and the schema's refusals.
package chart

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	fakeToken  = "tok-0123456789abcdef"
	fakeSecret = "sec-THIS-MUST-NEVER-BE-RENDERED-IN-PLAIN"
)

func chartDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "sakura-cloud-controller-manager")
}

// helmBinary finds the pinned helm that hack/build-tools.sh builds.
func helmBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SAKURA_TOOLS_BIN")
	if dir == "" {
		out, err := exec.Command(filepath.Join(chartDir(t), "..", "..", "hack", "build-tools.sh")).Output()
		if err != nil {
			t.Fatalf("building tools: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	return filepath.Join(dir, "helm")
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	// Keep helm's caches and config out of the user's home.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

type object = map[string]any

func render(t *testing.T, args ...string) map[string]object {
	t.Helper()
	out, err := helm(t, append([]string{"template", "ccm", chartDir(t), "--namespace", "kube-system"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	objs := map[string]object{}
	for _, doc := range strings.Split(out, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		md := o["metadata"].(map[string]any)
		objs[o["kind"].(string)+"/"+md["name"].(string)] = o
	}
	return objs
}

func dig(o any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := o.(map[string]any)
			if !ok {
				return nil
			}
			o = m[k]
		case int:
			s, ok := o.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			o = s[k]
		}
	}
	return o
}

var tokenValues = []string{"--set", "accessToken=" + fakeToken, "--set", "accessTokenSecret=" + fakeSecret}

func TestLint(t *testing.T) {
	if out, err := helm(t, append([]string{"lint", "--strict", chartDir(t)}, tokenValues...)...); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

func TestDefaultValues(t *testing.T) {
	objs := render(t, tokenValues...)
	for _, want := range []string{
		"Deployment/ccm-sakura-cloud-controller-manager", "Secret/ccm-sakura-cloud-controller-manager",
		"ConfigMap/ccm-sakura-cloud-controller-manager", "ServiceAccount/ccm-sakura-cloud-controller-manager",
		"ClusterRole/ccm-sakura-cloud-controller-manager", "ClusterRoleBinding/ccm-sakura-cloud-controller-manager",
		"Role/ccm-sakura-cloud-controller-manager-leader-election",
	} {
		if objs[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	dep := objs["Deployment/ccm-sakura-cloud-controller-manager"]
	// One replica schedules on every control plane, even of one node
	// (scheduling_test.go); a lone replica has no PDB to block a drain.
	if got := dig(dep, "spec", "replicas"); got != float64(1) {
		t.Errorf("replicas = %v, want 1", got)
	}
	if objs["PodDisruptionBudget/ccm-sakura-cloud-controller-manager"] != nil {
		t.Error("a PodDisruptionBudget for one replica blocks kubectl drain")
	}
	pod := dig(dep, "spec", "template", "spec")
	if dig(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod must run as non-root")
	}
	if dig(pod, "priorityClassName") != "system-cluster-critical" {
		t.Error("default priority class should be system-cluster-critical")
	}
	tolerations, _ := yaml.Marshal(dig(pod, "tolerations"))
	if !strings.Contains(string(tolerations), "node.cloudprovider.kubernetes.io/uninitialized") {
		t.Error("must tolerate uninitialized nodes: it is what initializes them")
	}
	args := dig(pod, "containers", 0, "args").([]any)
	for _, want := range []string{"--cloud-provider=sakuracloud", "--leader-elect=true", "--configure-cloud-routes=false",
		"--leader-elect-resource-name=ccm-sakura-cloud-controller-manager"} {
		if !slices.Contains(args, any(want)) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	// No cluster name by default: the controller derives a unique one.
	for _, a := range args {
		if strings.HasPrefix(a.(string), "--cluster-name") {
			t.Errorf("default args carry %s; the cluster ID must be derived, not the shared %q", a, "kubernetes")
		}
	}
	env := dig(pod, "containers", 0, "env").([]any)
	memoryLimit := false
	for _, e := range env {
		if dig(e, "value") != nil {
			t.Errorf("env %v carries a plain value; credentials must come from the Secret", e)
		}
		if dig(e, "name") == "MEMORY_LIMIT_MIB" {
			// The Go soft memory limit follows the container's limit.
			memoryLimit = dig(e, "valueFrom", "resourceFieldRef", "resource") == "limits.memory" &&
				dig(e, "valueFrom", "resourceFieldRef", "divisor") == "1Mi"
			continue
		}
		if dig(e, "valueFrom", "secretKeyRef", "name") != "ccm-sakura-cloud-controller-manager" {
			t.Errorf("env %v does not come from the chart's Secret", e)
		}
	}
	if !memoryLimit {
		t.Errorf("env %v does not pass limits.memory in MiB as MEMORY_LIMIT_MIB", env)
	}
	cm := objs["ConfigMap/ccm-sakura-cloud-controller-manager"]
	var cloudConfig map[string]any
	if err := yaml.UnmarshalStrict([]byte(dig(cm, "data", "cloud-config.yaml").(string)), &cloudConfig); err != nil {
		t.Fatalf("cloud-config does not parse: %v", err)
	}
	if _, set := cloudConfig["clusterID"]; set {
		t.Errorf("default cloud-config sets clusterID %v; it must be derived", cloudConfig["clusterID"])
	}
	if cloudConfig["zone"] != "is1a" || cloudConfig["disableLoadBalancer"] != false {
		t.Errorf("cloud-config = %v", cloudConfig)
	}
	// The credentials appear only base64-encoded in the Secret.
	for name, o := range objs {
		raw, _ := yaml.Marshal(o)
		if strings.Contains(string(raw), fakeSecret) || strings.Contains(string(raw), fakeToken) {
			t.Errorf("%s carries a credential in plain text", name)
		}
	}
}

func TestCustomValues(t *testing.T) {
	objs := render(t,
		"--set", "existingSecret=my-sakura-creds",
		"--set", "zone=tk1b", "--set", "clusterName=prod-a",
		"--set", "replicaCount=1", "--set", "loadBalancer.enabled=false",
		"--set", "loadBalancer.reservedIPRanges={203.0.113.20-203.0.113.22}",
		"--set", "loadBalancer.plan=highspec", "--set", "loadBalancer.ha=true",
		"--set", "logVerbosity=4", "--set", "image.tag=v9.9.9",
		"--set", "loadBalancer.sweepMode=report", "--set", "loadBalancer.healthPollIntervalSec=0",
		"--set", "loadBalancer.endpointHoldDownSec=30",
	)
	if objs["Secret/ccm-sakura-cloud-controller-manager"] != nil {
		t.Error("with existingSecret the chart must not create its own Secret")
	}
	if objs["PodDisruptionBudget/ccm-sakura-cloud-controller-manager"] != nil {
		t.Error("a PDB with minAvailable 1 would block drains of a single replica")
	}
	pod := dig(objs["Deployment/ccm-sakura-cloud-controller-manager"], "spec", "template", "spec")
	if got := dig(pod, "containers", 0, "image"); got != "ghcr.io/sakura-ccm/sakura-cloud-controller-manager:v9.9.9" {
		t.Errorf("image = %v", got)
	}
	args := dig(pod, "containers", 0, "args").([]any)
	if !slices.Contains(args, any("--v=4")) || !slices.Contains(args, any("--cluster-name=prod-a")) {
		t.Errorf("args = %v", args)
	}
	if dig(pod, "containers", 0, "env", 0, "valueFrom", "secretKeyRef", "name") != "my-sakura-creds" {
		t.Error("env must reference the existing Secret")
	}
	var cc map[string]any
	if err := yaml.Unmarshal([]byte(dig(objs["ConfigMap/ccm-sakura-cloud-controller-manager"], "data", "cloud-config.yaml").(string)), &cc); err != nil {
		t.Fatal(err)
	}
	if cc["zone"] != "tk1b" || cc["clusterID"] != "prod-a" || cc["disableLoadBalancer"] != true {
		t.Errorf("cloud-config = %v", cc)
	}
	lb := cc["loadBalancer"].(map[string]any)
	if lb["plan"] != "highspec" || lb["ha"] != true || dig(lb, "reservedIPRanges", 0) != "203.0.113.20-203.0.113.22" ||
		lb["sweepMode"] != "report" || lb["healthPollIntervalSec"] != float64(0) || lb["endpointHoldDownSec"] != float64(30) || lb["sweepIntervalSec"] != float64(300) {
		t.Errorf("loadBalancer = %v", lb)
	}
}

func TestBadValuesAreRefused(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no credentials", nil, "set accessToken and accessTokenSecret, or existingSecret"},
		{"unknown zone", append([]string{"--set", "zone=us-east-1"}, tokenValues...), "zone"},
		{"bad plan", append([]string{"--set", "loadBalancer.plan=huge"}, tokenValues...), "plan"},
		{"zero replicas", append([]string{"--set", "replicaCount=0"}, tokenValues...), "replicaCount"},
		{"negative retries", append([]string{"--set", "client.retryMax=-1"}, tokenValues...), "retryMax"},
		{"bad sweep mode", append([]string{"--set", "loadBalancer.sweepMode=sometimes"}, tokenValues...), "sweepMode"},
		{"unknown service loop", append([]string{"--set", "loadBalancer.serviceController=both"}, tokenValues...), "serviceController"},
		{"class without a domain", append([]string{"--set", "loadBalancer.class=dsr"}, tokenValues...), "class"},
		{"negative hold-down", append([]string{"--set", "loadBalancer.endpointHoldDownSec=-1"}, tokenValues...), "endpointHoldDownSec"},
		{"typo in loadBalancer", append([]string{"--set", "loadBalancer.palm=standard"}, tokenValues...), "palm"},
		{"cluster name with a space", append([]string{"--set", "clusterName=prod a"}, tokenValues...), "clusterName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "ccm", chartDir(t)}, tt.args...)...)
			if err == nil {
				t.Fatalf("helm template accepted bad values:\n%s", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("error does not name %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, fakeSecret) {
				t.Error("error output echoes the secret")
			}
		})
	}
}

// TestServiceLoopsRBAC: both Service loops (the upstream service controller
// and this project's own, for its class or for every Service) run under the
// one "service" controller with exactly these rules; the e2e suite runs the
// binary as this ServiceAccount in both modes and fails on any "forbidden".
func TestServiceLoopsRBAC(t *testing.T) {
	want := []string{
		"nodes: get,list,watch,update,patch,delete",
		"nodes/status: patch,update",
		"services: get,list,watch,patch",
		"services/status: patch,update",
		"endpointslices: list,watch",
		"events: create,patch,update",
	}
	for _, mode := range []string{"upstream", "own"} {
		objs := render(t, append([]string{"--set", "loadBalancer.serviceController=" + mode}, tokenValues...)...)
		var got []string
		rules, _ := dig(objs["ClusterRole/ccm-sakura-cloud-controller-manager"], "rules").([]any)
		for _, r := range rules {
			res := strings.Join(toStrings(dig(r, "resources")), ",")
			if res != "namespaces" {
				got = append(got, res+": "+strings.Join(toStrings(dig(r, "verbs")), ","))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("serviceController=%s: ClusterRole rules\n%s\nwant\n%s", mode, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		args := toStrings(dig(objs["Deployment/ccm-sakura-cloud-controller-manager"], "spec", "template", "spec", "containers", 0, "args"))
		if !slices.Contains(args, "--controllers=cloud-node,cloud-node-lifecycle,service") {
			t.Errorf("serviceController=%s: the controllers are not the three: %v", mode, args)
		}
	}
}

// TestIdentityRBACAndLease: what the cluster identity needs is granted with
// exactly these verbs and no more (get on the kube-system namespace only;
// get on the one recorded ConfigMap and create of ConfigMaps in the release's
// namespace), and two releases get two Leases.
func TestIdentityRBACAndLease(t *testing.T) {
	objs := render(t, tokenValues...)
	type rule struct{ Resources, ResourceNames, Verbs string }
	rulesOf := func(name string, resources ...string) []rule {
		var out []rule
		rules, _ := dig(objs[name], "rules").([]any)
		for _, r := range rules {
			res := strings.Join(toStrings(dig(r, "resources")), ",")
			if slices.Contains(resources, res) {
				out = append(out, rule{res, strings.Join(toStrings(dig(r, "resourceNames")), ","), strings.Join(toStrings(dig(r, "verbs")), ",")})
			}
		}
		return out
	}
	if got, want := rulesOf("ClusterRole/ccm-sakura-cloud-controller-manager", "namespaces", "configmaps"),
		[]rule{{"namespaces", "kube-system", "get"}}; !slices.Equal(got, want) {
		t.Errorf("ClusterRole rules on namespaces/configmaps = %v, want %v", got, want)
	}
	role := "Role/ccm-sakura-cloud-controller-manager-leader-election"
	if ns := dig(objs[role], "metadata", "namespace"); ns != "kube-system" {
		t.Errorf("%s in namespace %v, want the release's", role, ns)
	}
	if got, want := rulesOf(role, "configmaps", "leases"), []rule{
		{"leases", "", "get,create,update"},
		{"configmaps", "sakura-cloud-controller-manager-cluster-id", "get"},
		{"configmaps", "", "create"},
	}; !slices.Equal(got, want) {
		t.Errorf("%s rules = %v, want %v", role, got, want)
	}
	// A second release (another cluster's controller, or a second zone) has
	// its own Lease.
	leaseOf := func(objs map[string]object, dep string) string {
		for _, a := range dig(objs[dep], "spec", "template", "spec", "containers", 0, "args").([]any) {
			if v, ok := strings.CutPrefix(a.(string), "--leader-elect-resource-name="); ok {
				return v
			}
		}
		return ""
	}
	out, err := helm(t, append([]string{"template", "other", chartDir(t), "--namespace", "kube-system"}, tokenValues...)...)
	if err != nil {
		t.Fatal(err, out)
	}
	a := leaseOf(objs, "Deployment/ccm-sakura-cloud-controller-manager")
	if a == "" || !strings.Contains(out, "--leader-elect-resource-name=other-sakura-cloud-controller-manager") {
		t.Errorf("leases: release ccm %q; release other's args lack their own:\n%s", a, out)
	}
	// An explicit name reaches both the flag and the cloud-config.
	objs = render(t, append([]string{"--set", "clusterName=prod-a"}, tokenValues...)...)
	args := dig(objs["Deployment/ccm-sakura-cloud-controller-manager"], "spec", "template", "spec", "containers", 0, "args").([]any)
	if !slices.Contains(args, any("--cluster-name=prod-a")) {
		t.Errorf("args %v lack --cluster-name=prod-a", args)
	}
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

// TestTLSSecretRBAC: Secrets are readable (get only) exactly where
// rbac.secretNamespaces says: nowhere by default, per namespace by a Role
// each, everywhere with "*".
func TestTLSSecretRBAC(t *testing.T) {
	grants := func(args ...string) (cluster bool, namespaces []string) {
		out, err := helm(t, append([]string{"template", "ccm", chartDir(t), "--namespace", "kube-system"}, append(args, tokenValues...)...)...)
		if err != nil {
			t.Fatalf("helm template %v: %v\n%s", args, err, out)
		}
		for _, doc := range strings.Split(out, "\n---") {
			var o object
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil || o == nil {
				continue
			}
			rules, _ := dig(o, "rules").([]any)
			for _, r := range rules {
				if !slices.Contains(toStrings(dig(r, "resources")), "secrets") {
					continue
				}
				if verbs := toStrings(dig(r, "verbs")); !slices.Equal(verbs, []string{"get"}) {
					t.Errorf("%v: secrets verbs %v, want get only", args, verbs)
				}
				switch o["kind"] {
				case "ClusterRole":
					cluster = true
				case "Role":
					ns, _ := dig(o, "metadata", "namespace").(string)
					namespaces = append(namespaces, ns)
				}
			}
			if o["kind"] == "RoleBinding" && strings.HasSuffix(dig(o, "metadata", "name").(string), "-tls-secrets") {
				if dig(o, "subjects", 0, "name") != "ccm-sakura-cloud-controller-manager" {
					t.Errorf("%v: the tls-secrets RoleBinding binds %v", args, dig(o, "subjects"))
				}
			}
		}
		return cluster, namespaces
	}
	if c, ns := grants(); c || len(ns) != 0 {
		t.Errorf("default values grant Secrets: cluster-wide %v, namespaces %v", c, ns)
	}
	if c, ns := grants("--set", "rbac.secretNamespaces={web,shop}"); c || !slices.Equal(ns, []string{"web", "shop"}) {
		t.Errorf("two namespaces: cluster-wide %v, namespaces %v", c, ns)
	}
	if c, ns := grants("--set", "rbac.secretNamespaces={*}"); !c || len(ns) != 0 {
		t.Errorf(`"*": cluster-wide %v, namespaces %v`, c, ns)
	}
}
