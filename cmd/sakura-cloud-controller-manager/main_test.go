package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets the tests run main() in a child process (the test binary
// itself), because --version and fatal errors exit the process.
func TestMain(m *testing.M) {
	if os.Getenv("SCCM_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"sakura-cloud-controller-manager"}, strings.Fields(os.Getenv("SCCM_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args string, env ...string) (string, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"SCCM_TEST_RUN_MAIN=1", "SCCM_TEST_ARGS=" + args}, env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

func TestVersion(t *testing.T) {
	out, err := runMain(t, "--version")
	if err != nil || !strings.Contains(out, "Kubernetes v") {
		t.Fatalf("--version: %v\n%s", err, out)
	}
}

func TestHelp(t *testing.T) {
	out, err := runMain(t, "--help")
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, want := range []string{"Usage:\n  sakura-cloud-controller-manager", "--cloud-config", "--cluster-name",
		`--cloud-provider string`, `(default "sakuracloud")`, "cloud-node-controller, cloud-node-lifecycle-controller, service-lb-controller"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if strings.Contains(out, "node-route-controller") {
		t.Errorf("--help lists the route controller")
	}
}

func TestDefaults(t *testing.T) {
	cmd := newCommand()
	for name, want := range map[string]string{"configure-cloud-routes": "false", "cloud-provider": "sakuracloud"} {
		if f := cmd.Flags().Lookup(name); f == nil || f.Value.String() != want || f.DefValue != want {
			t.Errorf("--%s default: %v", name, f)
		}
	}
	ctrls := controllerInitializers()
	if len(ctrls) != 3 {
		t.Errorf("controllers %v", ctrls)
	}
	for _, n := range []string{"cloud-node-controller", "cloud-node-lifecycle-controller", "service-lb-controller"} {
		if _, ok := ctrls[n]; !ok {
			t.Errorf("controller %s missing", n)
		}
	}
}

// startWithInvalidConfig runs main with a cloud-config that lacks the
// access token: it gets as far as cloudInitializer and stops there.
func startWithInvalidConfig(t *testing.T, env ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := dir + "/kubeconfig"
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cloudConfig := dir + "/cloud.yaml"
	if err := os.WriteFile(cloudConfig, []byte("accessTokenSecret: sec-zz9-plural-z-alpha\nzone: is1a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return runMain(t, "--cloud-config "+cloudConfig+" --kubeconfig "+kubeconfig+
		" --authentication-skip-lookup --secure-port=0 --leader-elect=false -v=10", env...)
}

// TestInvalidConfigStopsStartup: one clear message, no secret, non-zero exit.
func TestInvalidConfigStopsStartup(t *testing.T) {
	out, err := startWithInvalidConfig(t)
	if err == nil {
		t.Fatalf("started with an invalid configuration:\n%s", out)
	}
	if !strings.Contains(out, "invalid configuration: accessToken (SAKURACLOUD_ACCESS_TOKEN): Required value") {
		t.Errorf("no clear message:\n%s", out)
	}
	if strings.Contains(out, "sec-zz9-plural-z-alpha") {
		t.Errorf("the secret was printed")
	}
}

// TestMemoryLimit: the Go soft limit comes from the chart's
// MEMORY_LIMIT_MIB unless GOMEMLIMIT is set, and is logged once.
func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"GOMEMLIMIT=", "MEMORY_LIMIT_MIB=256"}, `"Go memory limit set from the container's memory limit" containerLimitMiB=256 percent=70 goMemLimit="179MiB"`},
		{[]string{"GOMEMLIMIT=100MiB", "MEMORY_LIMIT_MIB=256"}, `"Go memory limit left as is" reason="GOMEMLIMIT is set" goMemLimit="100MiB"`},
		{[]string{"GOMEMLIMIT=", "MEMORY_LIMIT_MIB="}, `"Go memory limit left as is" reason="MEMORY_LIMIT_MIB is not set" goMemLimit="none"`},
		{[]string{"GOMEMLIMIT=", "MEMORY_LIMIT_MIB=256Mi"}, `"Go memory limit not derived from the container's" err="MEMORY_LIMIT_MIB=\"256Mi\" is not a positive whole number of MiB" goMemLimit="none"`},
	} {
		out, _ := startWithInvalidConfig(t, c.env...)
		if n := strings.Count(out, "Go memory limit"); n != 1 || !strings.Contains(out, c.want) {
			t.Errorf("%v: logged %d times, want once: %s\n%s", c.env, n, c.want, out)
		}
	}
}
