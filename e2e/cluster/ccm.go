package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// CCMOptions configures one controller replica.
type CCMOptions struct {
	// Simulator the controller talks to (required).
	Simulator *Simulator
	// ClusterID tags what the cluster owns. Empty: "e2e".
	ClusterID string
	// DeriveClusterID leaves the cluster ID unset (no clusterID in the
	// cloud-config, --cluster-name=kubernetes, the upstream default), so the
	// controller derives it from the kube-system namespace; ClusterID is
	// ignored.
	DeriveClusterID bool
	// Zone. Empty: is1a.
	Zone string
	// Name of this replica: names its log, config and the leader-election
	// identity's prefix. Empty: "ccm".
	Name string
	// LeaseName is the leader-election Lease in kube-system. Replicas that
	// should compete share it; independent runs use distinct names so they
	// never wait for a dead holder's lease to expire. Empty: Name.
	LeaseName string
	// NoLeaderElect runs without leader election (on by default).
	NoLeaderElect bool
	// Extra cloud-config keys merged over the generated ones (e.g.
	// "loadBalancer": map[string]any{...}).
	Extra map[string]any
	// Args are extra flags.
	Args []string
	// Env is extra environment (KEY=VALUE).
	Env []string
}

// CCM is one running controller replica. Restart and Kill keep the same
// configuration, log file and identity prefix.
type CCM struct {
	Name       string
	ConfigFile string
	LogFile    string
	Process    *Process
	Secret     string
	cluster    *Cluster
	stopped    bool // Kill or Stop asked for the exit
	bin        string
	args       []string
	env        []string
}

// WriteCloudConfig writes the controller's cloud-config (mode 0600: it holds
// the API secret) and returns its path.
func (c *Cluster) WriteCloudConfig(path string, opts CCMOptions) error {
	if opts.Simulator == nil {
		return fmt.Errorf("cloud-config needs a simulator")
	}
	cfg := map[string]any{
		"accessToken":       opts.Simulator.Token,
		"accessTokenSecret": opts.Simulator.Secret,
		"zone":              opts.Zone,
		"clusterID":         opts.ClusterID,
		"apiRootURL":        opts.Simulator.URL,
	}
	if opts.DeriveClusterID {
		delete(cfg, "clusterID")
	}
	for k, v := range opts.Extra {
		cfg[k] = v
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

// StartCCM starts one controller replica against the simulator, with the
// flags from the brief, leader election in kube-system and logs in Dir.
func (c *Cluster) StartCCM(ctx context.Context, opts CCMOptions) (*CCM, error) {
	clusterName := opts.ClusterID
	switch {
	case opts.DeriveClusterID:
		clusterName = "kubernetes"
	case opts.ClusterID == "":
		opts.ClusterID, clusterName = "e2e", "e2e"
	}
	if opts.Zone == "" {
		opts.Zone = "is1a"
	}
	if opts.Name == "" {
		opts.Name = "ccm"
	}
	if opts.LeaseName == "" {
		opts.LeaseName = opts.Name
	}
	bin, err := c.CCMBinary(ctx)
	if err != nil {
		return nil, err
	}
	m := &CCM{
		Name:       opts.Name,
		ConfigFile: filepath.Join(c.Dir, opts.Name+".cloud-config.yaml"),
		LogFile:    filepath.Join(c.Dir, opts.Name+".log"),
		Secret:     opts.Simulator.Secret,
		cluster:    c,
		bin:        bin,
		env:        opts.Env,
	}
	if err := c.WriteCloudConfig(m.ConfigFile, opts); err != nil {
		return nil, err
	}
	m.args = append([]string{
		"--cloud-provider=sakuracloud",
		"--cloud-config", m.ConfigFile,
		"--kubeconfig", c.CCMKubeconfig,
		"--authentication-kubeconfig", c.CCMKubeconfig,
		"--authorization-kubeconfig", c.CCMKubeconfig,
		"--secure-port=0",
		"--cluster-name", clusterName,
		"--controllers=cloud-node,cloud-node-lifecycle,service",
		"--configure-cloud-routes=false",
		fmt.Sprintf("--leader-elect=%t", !opts.NoLeaderElect),
		"--leader-elect-resource-namespace=kube-system",
		"--leader-elect-resource-name=" + opts.LeaseName,
		// Short leases so a takeover after a crash happens within seconds.
		"--leader-elect-lease-duration=8s",
		"--leader-elect-renew-deadline=5s",
		"--leader-elect-retry-period=1s",
		"--node-monitor-period=2s",
		// Replicas share the host: no fixed webhook port.
		"--webhook-secure-port=0",
		"--v=2",
	}, opts.Args...)
	if err := m.start(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *CCM) start() error {
	fmt.Fprintf(logAppender(m.LogFile), "=== %s starting %s ===\n", time.Now().Format(time.RFC3339), m.Name)
	m.stopped = false
	p, err := startProcess(m.Name, m.bin, m.args, m.LogFile, m.env)
	if err != nil {
		return err
	}
	m.Process = p
	c := m.cluster
	c.mu.Lock()
	c.ccms = append(c.ccms, m)
	c.mu.Unlock()
	return nil
}

type appender string

func (a appender) Write(b []byte) (int, error) {
	f, err := os.OpenFile(string(a), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Write(b)
}

func logAppender(path string) appender { return appender(path) }

// Kill SIGKILLs the replica (a crash: no lease release, no cleanup).
func (m *CCM) Kill() {
	m.stopped = true
	m.Process.Kill()
}

// Stop ends the replica gracefully (SIGTERM, then SIGKILL after 5s).
func (m *CCM) Stop() {
	m.stopped = true
	m.Process.Stop(5 * time.Second)
}

// Crashed reports an exit nobody asked for, with the log's tail.
func (m *CCM) Crashed() (bool, string) {
	if m.stopped {
		return false, ""
	}
	if ok, err := m.Process.Exited(); ok {
		return true, fmt.Sprintf("%s exited by itself (%v); last lines of %s:\n%s", m.Name, err, m.LogFile, m.Tail(40))
	}
	return false, ""
}

// Restart starts the replica again (after Kill or Stop) with the same flags
// and config; its log continues in the same file.
func (m *CCM) Restart() error {
	if ok, _ := m.Process.Exited(); !ok {
		m.Kill()
	}
	return m.start()
}

// Running reports whether the process is alive.
func (m *CCM) Running() bool {
	ok, _ := m.Process.Exited()
	return !ok
}

// Log returns the whole log (all runs of this replica).
func (m *CCM) Log() string {
	b, _ := os.ReadFile(m.LogFile)
	return string(b)
}

// Tail returns the last n log lines.
func (m *CCM) Tail(n int) string { return tailFile(m.LogFile, n) }

// CheckNoSecret fails if the replica's log contains the API secret.
// CheckNoForbidden fails if the API server denied the controller anything:
// the chart's RBAC must cover everything the binary does.
func (m *CCM) CheckNoForbidden() error {
	for _, line := range strings.Split(m.Log(), "\n") {
		if strings.Contains(line, "forbidden") {
			return fmt.Errorf("%s was denied by RBAC (chart templates/rbac.yaml lacks a rule): %s", m.Name, line)
		}
	}
	return nil
}

func (m *CCM) CheckNoSecret() error {
	if containsSecret(m.Log(), m.Secret) {
		return fmt.Errorf("the API secret appears in %s", m.LogFile)
	}
	return nil
}

// CheckLogsForSecret scans every log file of the cluster for the secrets.
func (c *Cluster) CheckLogsForSecret(secrets ...string) error {
	var bad []string
	for _, f := range c.LogFiles() {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if containsSecret(string(b), secrets...) {
			bad = append(bad, filepath.Base(f))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("an API secret appears in %s", strings.Join(bad, ", "))
	}
	return nil
}
