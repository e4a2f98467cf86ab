package chart

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
)

// chartSetting says how the chart sets one cloud-config setting: the helm
// --set that gives it a value other than its default, and the value the
// controller must then read.
type chartSetting struct {
	set  string
	want any
}

// chartSettings covers every row of config.Settings (the table that also
// drives docs/configuration.md); a setting added there without a chart
// value fails TestEverySettingReachable.
var chartSettings = map[string]chartSetting{
	"zone":                                {"zone=tk1b", "tk1b"},
	"zones":                               {"zones={tk1b,tk1a}", []any{"tk1b", "tk1a"}},
	"clusterID":                           {"clusterName=prod-a", "prod-a"},
	"apiRootURL":                          {"apiRootURL=https://proxy.example/cloud/zone", "https://proxy.example/cloud/zone"},
	"retryMax":                            {"client.retryMax=7", 7},
	"retryIntervalSec":                    {"client.retryIntervalSec=2", 2},
	"retryMaxWaitSec":                     {"client.retryMaxWaitSec=20", 20},
	"requestsPerSecond":                   {"client.requestsPerSecond=3.5", 3.5}, // --set-json: --set makes 3.5 a string
	"requestTimeoutSec":                   {"client.requestTimeoutSec=45", 45},
	"serverCacheTTLSec":                   {"client.serverCacheTTLSec=120", 120},
	"disableLoadBalancer":                 {"loadBalancer.enabled=false", true},
	"loadBalancer.type":                   {"loadBalancer.type=switch", "switch"},
	"loadBalancer.plan":                   {"loadBalancer.plan=highspec", "highspec"},
	"loadBalancer.ha":                     {"loadBalancer.ha=true", true},
	"loadBalancer.routerID":               {"loadBalancer.routerID=113000000123", "113000000123"}, // --set-string
	"loadBalancer.switchID":               {"loadBalancer.switchID=113000000456", "113000000456"}, // --set-string
	"loadBalancer.routerSelector":         {"loadBalancer.routerSelector={k8s,prod}", []any{"k8s", "prod"}},
	"loadBalancer.switchSelector":         {"loadBalancer.switchSelector={lb}", []any{"lb"}},
	"loadBalancer.zones":                  {"loadBalancer.zones={tk1a}", []any{"tk1a"}},
	"loadBalancer.elbPlan":                {"loadBalancer.elbPlan=5000", 5000},
	"loadBalancer.elbRegion":              {"loadBalancer.elbRegion=anycast", "anycast"},
	"loadBalancer.blocks":                 {"loadBalancer.blocks={113000000123,113000000456}", []any{"113000000123", "113000000456"}}, // --set-string
	"loadBalancer.reservedIPRanges":       {"loadBalancer.reservedIPRanges={192.168.0.10-192.168.0.12,192.168.0.64/28}", []any{"192.168.0.10-192.168.0.12", "192.168.0.64/28"}},
	"loadBalancer.ipRange":                {"loadBalancer.ipRange=192.168.0.0/24", "192.168.0.0/24"},
	"loadBalancer.assignIPRange":          {"loadBalancer.assignIPRange=192.168.0.128/25", "192.168.0.128/25"},
	"loadBalancer.assignDefaultGateway":   {"loadBalancer.assignDefaultGateway=192.168.0.1", "192.168.0.1"},
	"loadBalancer.sweepIntervalSec":       {"loadBalancer.sweepIntervalSec=600", 600},
	"loadBalancer.endpointHoldDownSec":    {"loadBalancer.endpointHoldDownSec=30", 30},
	"loadBalancer.endpointMinIntervalSec": {"loadBalancer.endpointMinIntervalSec=7", 7},
	"loadBalancer.healthPollIntervalSec":  {"loadBalancer.healthPollIntervalSec=90", 90},
	"loadBalancer.repairIntervalSec":      {"loadBalancer.repairIntervalSec=120", 120},
	"loadBalancer.inventoryTTLSec":        {"loadBalancer.inventoryTTLSec=30", 30},
	"loadBalancer.sweepMode":              {"loadBalancer.sweepMode=report", "report"},
	"loadBalancer.adoptEarlier":           {"loadBalancer.adoptEarlier=false", false},
	"loadBalancer.class":                  {"loadBalancer.class=example.com/sakura", "example.com/sakura"},
	"loadBalancer.elbClass":               {"loadBalancer.elbClass=example.com/proxy", "example.com/proxy"},
	"loadBalancer.serviceController":      {"loadBalancer.serviceController=own", "own"},
}

// renderedAlone are settings that exclude others of the table (blocks
// excludes routerID, switchID and the selectors): each is rendered on its own.
var renderedAlone = map[string]bool{"loadBalancer.blocks": true}

// secretSettings reach the controller as environment variables from the
// Secret (TestDefaultValues checks the references), never the ConfigMap.
var secretSettings = map[string]string{
	"accessToken":       "SAKURACLOUD_ACCESS_TOKEN",
	"accessTokenSecret": "SAKURACLOUD_ACCESS_TOKEN_SECRET",
}

// loadedConfig renders the chart with args, loads its cloud-config with the
// controller's own loader (credentials from the environment, as in the pod)
// and returns the result as a map keyed like the cloud-config.
func loadedConfig(t *testing.T, args ...string) map[string]any {
	t.Helper()
	objs := render(t, append(append([]string{}, tokenValues...), args...)...)
	data := dig(objs["ConfigMap/ccm-sakura-cloud-controller-manager"], "data", "cloud-config.yaml").(string)
	env := func(name string) (string, bool) {
		switch name {
		case "SAKURACLOUD_ACCESS_TOKEN":
			return fakeToken, true
		case "SAKURACLOUD_ACCESS_TOKEN_SECRET":
			return fakeSecret, true
		}
		return "", false
	}
	c, err := config.Parse([]byte(data), env)
	if err != nil {
		t.Fatalf("the controller refuses the rendered cloud-config: %v\n%s", err, strings.ReplaceAll(data, fakeSecret, "<secret>"))
	}
	return configMap(t, c)
}

func configMap(t *testing.T, c *config.Config) map[string]any {
	t.Helper()
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func digKey(m map[string]any, key string) any {
	var path []any
	for _, p := range strings.Split(key, ".") {
		path = append(path, p)
	}
	return dig(m, path...)
}

// setFlag is the helm flag an operator would use for the value: IDs are
// digits but strings, and --set turns a decimal into a string.
func setFlag(set string) string {
	switch {
	case strings.HasSuffix(strings.SplitN(set, "=", 2)[0], "ID"), strings.HasPrefix(set, "loadBalancer.blocks="):
		return "--set-string"
	case strings.Contains(set, "requestsPerSecond"):
		return "--set-json"
	}
	return "--set"
}

func normalize(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

// TestEverySettingReachable sets every setting of the controller's typed
// settings table through the chart and checks the controller reads it.
func TestEverySettingReachable(t *testing.T) {
	var args []string
	for _, s := range config.Settings {
		if env, ok := secretSettings[s.Key]; ok {
			if s.Env != env {
				t.Errorf("setting %s: the chart passes it as %s, the controller reads %s", s.Key, env, s.Env)
			}
			continue
		}
		cs, ok := chartSettings[s.Key]
		if !ok {
			t.Errorf("setting %s (docs/configuration.md) cannot be set through the chart: add a value and a row to chartSettings", s.Key)
			continue
		}
		if !renderedAlone[s.Key] {
			args = append(args, setFlag(cs.set), cs.set)
		}
	}
	for key := range chartSettings {
		if !slices.ContainsFunc(config.Settings, func(s config.Setting) bool { return s.Key == key }) {
			t.Errorf("chartSettings has %s, which is no setting of the controller", key)
		}
	}
	got := loadedConfig(t, args...)
	for key, cs := range chartSettings {
		got := got
		if renderedAlone[key] {
			got = loadedConfig(t, setFlag(cs.set), cs.set)
		}
		if v := digKey(got, key); !reflect.DeepEqual(v, normalize(cs.want)) {
			t.Errorf("--set %s: the controller reads %s = %v, want %v", cs.set, key, v, cs.want)
		}
	}
}

// TestChartDefaultsAreTheControllers: with its own defaults the chart
// configures exactly what the controller would choose by itself, so the
// defaults documented in docs/configuration.md hold for chart installs.
func TestChartDefaultsAreTheControllers(t *testing.T) {
	got := loadedConfig(t)
	env := func(name string) (string, bool) {
		switch name {
		case "SAKURACLOUD_ACCESS_TOKEN":
			return fakeToken, true
		case "SAKURACLOUD_ACCESS_TOKEN_SECRET":
			return fakeSecret, true
		case "SAKURACLOUD_ZONE":
			return "is1a", true
		}
		return "", false
	}
	c, err := config.Parse(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	want := configMap(t, c)
	for _, s := range config.Settings {
		if s.Key == "clusterID" {
			continue // the chart's clusterName, not a controller default
		}
		if g, w := digKey(got, s.Key), digKey(want, s.Key); !reflect.DeepEqual(g, w) {
			t.Errorf("chart default of %s is %v, the controller's %v", s.Key, g, w)
		}
	}
}

// TestUnknownValuesRefused: a typo anywhere in the values is an error, not a
// silently ignored setting.
func TestUnknownValuesRefused(t *testing.T) {
	for _, tt := range []struct{ set, name string }{
		{"clustername=prod-a", "clustername"}, // top level
		{"loadBalancer.palm=standard", "palm"},
		{"client.retrymax=3", "retrymax"},
		{"image.tags=v1", "tags"},
		{"existingSecretKeys.token=x", "token"},
		{"serviceAccount.nmae=x", "nmae"},
		{"rbac.enabled=false", "enabled"},
		{"podDisruptionBudget.minAvailable=1", "minAvailable"}, // the old key: refused, not ignored
		{"affinity.nodeAfinity.x=y", "nodeAfinity"},
		{"resources.limit.memory=1Gi", "limit"},
		{"monitoring.serviceMonitor.enable=true", "enable"},
		{"monitoring.prometheusRule.enabeld=true", "enabeld"},
		{"monitoring.scraperRBAC.crate=true", "crate"},
		{"monitoring.grafana=true", "grafana"},
		{"tolerations[0].keys=x", "keys"},
		{"extraVolumeMounts[0].mountpath=/x,extraVolumeMounts[0].name=x", "mountpath"},
	} {
		t.Run(tt.set, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "ccm", chartDir(t), "--set", tt.set}, tokenValues...)...)
			if err == nil {
				t.Fatalf("--set %s accepted", tt.set)
			}
			if lower := strings.ToLower(out); !strings.Contains(out, tt.name) || !strings.Contains(lower, "not allowed") {
				t.Errorf("error does not name %q:\n%s", tt.name, out)
			}
			if strings.Contains(out, fakeSecret) {
				t.Error("error output echoes the secret")
			}
		})
	}
}

// TestExtraValues: what a cluster needs beyond the defaults is set without
// forking the chart, and adds to the chart's own settings.
func TestExtraValues(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`
extraArgs: ["--kube-api-qps=40", "--concurrent-service-syncs=2"]
extraEnv:
  - name: HTTPS_PROXY
    value: http://proxy.internal:3128
extraVolumes:
  - name: proxy-ca
    configMap:
      name: proxy-ca
extraVolumeMounts:
  - name: proxy-ca
    mountPath: /etc/proxy-ca
    readOnly: true
tolerations:
  - key: dedicated
    operator: Equal
    value: infra
    effect: NoSchedule
nodeSelector:
  topology.kubernetes.io/zone: is1a
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: sakura-cloud-controller-manager
podAnnotations:
  example.com/team: platform
podLabels:
  team: platform
resources:
  requests: {cpu: 100m, memory: 128Mi}
  limits: {memory: 512Mi}
priorityClassName: infra-critical
`), 0o600); err != nil {
		t.Fatal(err)
	}
	objs := render(t, append([]string{"-f", values}, tokenValues...)...)
	pod := dig(objs["Deployment/ccm-sakura-cloud-controller-manager"], "spec", "template", "spec")
	ctr := dig(pod, "containers", 0)
	args := dig(ctr, "args").([]any)
	for _, want := range []string{"--cloud-provider=sakuracloud", "--kube-api-qps=40", "--concurrent-service-syncs=2"} {
		if !slices.Contains(args, any(want)) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	env, _ := yaml.Marshal(dig(ctr, "env"))
	for _, want := range []string{"SAKURACLOUD_ACCESS_TOKEN", "MEMORY_LIMIT_MIB", "HTTPS_PROXY"} {
		if !strings.Contains(string(env), want) {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	if dig(pod, "volumes", 0, "name") != "cloud-config" || dig(pod, "volumes", 1, "name") != "proxy-ca" {
		t.Errorf("volumes = %v", dig(pod, "volumes"))
	}
	if dig(ctr, "volumeMounts", 1, "mountPath") != "/etc/proxy-ca" {
		t.Errorf("volumeMounts = %v", dig(ctr, "volumeMounts"))
	}
	tolerations, _ := yaml.Marshal(dig(pod, "tolerations"))
	for _, want := range []string{"node.cloudprovider.kubernetes.io/uninitialized", "node-role.kubernetes.io/control-plane", "dedicated"} {
		if !strings.Contains(string(tolerations), want) {
			t.Errorf("tolerations lack %s (extra ones add to the chart's):\n%s", want, tolerations)
		}
	}
	if dig(pod, "nodeSelector", "topology.kubernetes.io/zone") != "is1a" {
		t.Errorf("nodeSelector = %v", dig(pod, "nodeSelector"))
	}
	// The given podAntiAffinity replaces the chart's; its node affinity stays.
	if dig(pod, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey") != "kubernetes.io/hostname" ||
		dig(pod, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution") != nil {
		t.Errorf("podAntiAffinity = %v", dig(pod, "affinity", "podAntiAffinity"))
	}
	if dig(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", 0, "matchExpressions", 0, "operator") != "Exists" {
		t.Errorf("nodeAffinity = %v", dig(pod, "affinity", "nodeAffinity"))
	}
	meta := dig(objs["Deployment/ccm-sakura-cloud-controller-manager"], "spec", "template", "metadata")
	if dig(meta, "annotations", "example.com/team") != "platform" || dig(meta, "labels", "team") != "platform" {
		t.Errorf("pod metadata = %v", meta)
	}
	if dig(ctr, "resources", "limits", "memory") != "512Mi" || dig(ctr, "resources", "requests", "cpu") != "100m" {
		t.Errorf("resources = %v", dig(ctr, "resources"))
	}
	if dig(pod, "priorityClassName") != "infra-critical" {
		t.Errorf("priorityClassName = %v", dig(pod, "priorityClassName"))
	}
}

// TestVersionIsOnePlace: the image tag the chart references by default is
// the VERSION that make image, make push and make release use.
func TestVersionIsOnePlace(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "..", "..", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(raw))
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	raw, err = os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.AppVersion != version || "v"+chart.Version != version {
		t.Errorf("Chart.yaml version %s, appVersion %s; VERSION is %s", chart.Version, chart.AppVersion, version)
	}
	pod := dig(render(t, tokenValues...)["Deployment/ccm-sakura-cloud-controller-manager"], "spec", "template", "spec")
	if got := dig(pod, "containers", 0, "image"); got != "ghcr.io/sakura-ccm/sakura-cloud-controller-manager:"+version {
		t.Errorf("default image %v, want the tag %s", got, version)
	}
	changelog, err := os.ReadFile(filepath.Join(chartDir(t), "..", "..", "CHANGELOG.md"))
	if err != nil || !strings.Contains(string(changelog), "\n## ["+version+"]") {
		t.Errorf("CHANGELOG.md has no entry for %s (%v)", version, err)
	}
}

// TestEarlierChartValues: the install command from the earlier controller's
// announcement (helm 3 form) renders with today's chart, its nested values
// mapped onto today's names, and installs; a value given under both names
// with different values is refused naming both, never echoing a credential.
func TestEarlierChartValues(t *testing.T) {
	earlier := []string{"--set", "sacloud.accessToken=" + fakeToken, "--set", "sacloud.accessTokenSecret=" + fakeSecret,
		"--set", "sacloud.zone=tk1a", "--set", "sacloud.clusterID=old-cluster"}
	objs := render(t, earlier...)
	cfg, _ := dig(objs["ConfigMap/ccm-sakura-cloud-controller-manager"], "data", "cloud-config.yaml").(string)
	if !strings.Contains(cfg, `zone: "tk1a"`) || !strings.Contains(cfg, `clusterID: "old-cluster"`) {
		t.Fatalf("cloud-config does not carry sacloud.zone and sacloud.clusterID:\n%s", cfg)
	}
	var secret object
	for k, o := range objs {
		if strings.HasPrefix(k, "Secret/") {
			secret = o
		}
	}
	if tok, _ := dig(secret, "data", "access-token").(string); tok != base64.StdEncoding.EncodeToString([]byte(fakeToken)) {
		t.Fatalf("the Secret does not carry sacloud.accessToken")
	}
	args := toStrings(dig(objs["Deployment/ccm-sakura-cloud-controller-manager"], "spec", "template", "spec", "containers", 0, "args"))
	if !slices.Contains(args, "--cluster-name=old-cluster") {
		t.Fatalf("args %v lack --cluster-name=old-cluster", args)
	}
	c := controlPlane(t)
	notes, err := helm(t, append([]string{"install", "earlier-notes", chartDir(t), "--dry-run=client", "--namespace", "kube-system", "--kubeconfig", c.AdminKubeconfig}, earlier...)...)
	if err != nil || !strings.Contains(notes, "DEPRECATED: the values sacloud.accessToken") {
		t.Fatalf("the install notes lack the deprecation line (err %v):\n%s", err, notes)
	}
	if strings.Contains(notes, fakeSecret) {
		t.Fatal("the install output echoes the secret")
	}

	// It installs: the rendered objects are accepted by the API server.
	out, err := helm(t, append([]string{"template", "earlier", chartDir(t), "--namespace", "kube-system"}, earlier...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	if out, err := kubectl(t, c, []byte(out), "apply", "--dry-run=server", "-f", "-"); err != nil {
		t.Fatalf("the API server refused the earlier command's objects: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"zone under both names", []string{"--set", "zone=is1b"}, []string{"sacloud.zone", "zone", "tk1a", "is1b"}},
		{"cluster ID under both names", []string{"--set", "clusterName=new-cluster"}, []string{"sacloud.clusterID", "clusterName"}},
		{"token under both names", []string{"--set", "accessToken=another"}, []string{"sacloud.accessToken", "accessToken"}},
		{"a typo under sacloud", []string{"--set", "sacloud.clusterid=x"}, []string{"clusterid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append(append([]string{"template", "ccm", chartDir(t)}, earlier...), tc.args...)...)
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("error does not name %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, fakeSecret) || strings.Contains(out, fakeToken) || strings.Contains(out, "another") {
				t.Error("error output echoes a credential")
			}
		})
	}
}
