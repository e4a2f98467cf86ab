// Package cluster starts a real Kubernetes control plane (etcd,
// kube-apiserver, optionally kube-controller-manager) on 127.0.0.1 without
// containers, plus the processes around it: the SAKURA API simulator and one
// or more sakura-cloud-controller-manager replicas. Every process runs in its
// own process group, is stopped by pid, and lives in one temporary directory
// that Stop removes. It backs both the e2e tests and hack/sandbox.sh.
package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configures Start. Zero values pick sensible defaults.
type Options struct {
	// Dir holds certificates, data, kubeconfigs and logs. Empty: a new
	// temporary directory. Stop removes it (see KeepLogs).
	Dir string
	// RepoRoot is the repository checkout (holding hack/build-tools.sh).
	// Empty: found by walking up from the working directory.
	RepoRoot string
	// ToolsBin holds etcd, kube-apiserver, kube-controller-manager, kubectl.
	// Empty: $SAKURA_TOOLS_BIN, else the output of hack/build-tools.sh.
	ToolsBin string
	// CCMBinary is the controller binary. Empty: $CCM_BINARY, else built
	// with `go build` from RepoRoot on first use.
	CCMBinary string
	// SimulatorBinary is e2e/cmd/sakurasim. Empty: $SAKURASIM_BINARY, else
	// built from the e2e module on first use.
	SimulatorBinary string
	// ControllerManager starts kube-controller-manager (EndpointSlices,
	// service-account tokens, namespace and garbage collection).
	ControllerManager bool
	// Scheduler starts kube-scheduler (hack/build-tools.sh builds it), which
	// binds pods by their real constraints; without it nothing schedules.
	Scheduler bool
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
}

// Cluster is a running control plane and the processes started around it.
type Cluster struct {
	Dir      string
	RepoRoot string
	ToolsBin string
	// AdminKubeconfig is a kubeconfig for a system:masters user.
	AdminKubeconfig string
	// CCMKubeconfig is the controller's own identity: a token of the helm
	// chart's ServiceAccount, bound by the chart's RBAC (see chartrbac.go).
	CCMKubeconfig string
	// APIServerURL is https://127.0.0.1:PORT.
	APIServerURL string
	// Config and Client are the admin's.
	Config *rest.Config
	Client kubernetes.Interface

	Etcd, APIServer, ControllerManager, Scheduler *Process

	opts    Options
	pki     *pki
	saKey   string
	etcdURL string
	mu      sync.Mutex
	sims    []*Simulator
	ccms    []*CCM
	stopped bool

	buildMu   sync.Mutex
	ccmBinary string
	simBinary string
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// Start brings up etcd and kube-apiserver (and kube-controller-manager if
// asked) and waits until the API server is ready. On error everything started
// so far is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	c = &Cluster{opts: opts}
	if c.RepoRoot, err = findRepoRoot(opts.RepoRoot); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "sakura-ccm-e2e-"); err != nil {
			return nil, err
		}
	} else {
		c.Dir, err = filepath.Abs(opts.Dir)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return nil, err
		}
	}
	// The error returns below set c to nil: stop what was started through
	// a copy.
	started := c
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	if c.ToolsBin, err = resolveTools(ctx, c.RepoRoot, opts.ToolsBin, c.logf); err != nil {
		return nil, err
	}
	if c.pki, err = newPKI(filepath.Join(c.Dir, "pki")); err != nil {
		return nil, err
	}
	if err := c.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return nil, err
	}
	if err := c.installChartRBAC(ctx); err != nil {
		return nil, err
	}
	if opts.ControllerManager {
		if err := c.startControllerManager(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Scheduler {
		if err := c.startScheduler(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	client, err := freePort()
	if err != nil {
		return err
	}
	peer, err := freePort()
	if err != nil {
		return err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	c.logf("starting etcd on %s", clientURL)
	p, err := startProcess("etcd", filepath.Join(c.ToolsBin, "etcd"), []string{
		"--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peer),
		"--log-level", "warn",
		// The data is thrown away after the run; skip fsync cost.
		"--unsafe-no-fsync",
	}, filepath.Join(c.Dir, "etcd.log"), nil)
	if err != nil {
		return err
	}
	c.Etcd = p
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = Poll(wctx, 200*time.Millisecond, p, func() (bool, error) {
		resp, err := http.Get(clientURL + "/health")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("etcd not healthy: %w", err)
	}
	c.etcdURL = clientURL
	return nil
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	servingCert, servingKey, err := c.pki.issue("apiserver", "kube-apiserver", nil, []string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"})
	if err != nil {
		return err
	}
	saPub, saKey, err := c.pki.serviceAccountKeys()
	if err != nil {
		return err
	}
	c.saKey = saKey
	c.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	c.logf("starting kube-apiserver on %s", c.APIServerURL)
	p, err := startProcess("kube-apiserver", filepath.Join(c.ToolsBin, "kube-apiserver"), []string{
		"--etcd-servers", c.etcdURL,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port),
		"--tls-cert-file", servingCert,
		"--tls-private-key-file", servingKey,
		"--client-ca-file", c.pki.CAFile,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		// Dual-stack Service ranges (IPv4 first, so Services stay IPv4 by
		// default), so that IPv6-only and dual-stack Services can be made.
		"--service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112",
		"--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false",
		"--v", "1",
	}, filepath.Join(c.Dir, "kube-apiserver.log"), nil)
	if err != nil {
		return err
	}
	c.APIServer = p

	adminCert, adminKey, err := c.pki.issue("admin", "e2e-admin", []string{"system:masters"}, nil)
	if err != nil {
		return err
	}
	c.AdminKubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := c.writeKubeconfig(c.AdminKubeconfig, "admin", adminCert, adminKey); err != nil {
		return err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig); err != nil {
		return err
	}
	c.Config.QPS, c.Config.Burst = 50, 100
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}

	tlsCfg, err := rest.TLSConfigFor(c.Config)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 5 * time.Second}
	wctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	err = Poll(wctx, 250*time.Millisecond, p, func() (bool, error) {
		resp, err := hc.Get(c.APIServerURL + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver not ready: %w", err)
	}
	return nil
}

func (c *Cluster) writeKubeconfig(path, user, certFile, keyFile string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["sakura-e2e"] = &clientcmdapi.Cluster{Server: c.APIServerURL, CertificateAuthority: c.pki.CAFile}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["sakura-e2e"] = &clientcmdapi.Context{Cluster: "sakura-e2e", AuthInfo: user}
	cfg.CurrentContext = "sakura-e2e"
	return clientcmd.WriteToFile(*cfg, path)
}

func (c *Cluster) startControllerManager(ctx context.Context) error {
	kcmCert, kcmKey, err := c.pki.issue("kcm", "system:kube-controller-manager", nil, nil)
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(c.Dir, "kcm.kubeconfig")
	if err := c.writeKubeconfig(kubeconfig, "kcm", kcmCert, kcmKey); err != nil {
		return err
	}
	c.logf("starting kube-controller-manager")
	p, err := startProcess("kube-controller-manager", filepath.Join(c.ToolsBin, "kube-controller-manager"), []string{
		"--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig,
		"--authorization-kubeconfig", kubeconfig,
		"--secure-port", "0",
		"--leader-elect=false",
		// Each controller under its own ServiceAccount and bootstrap role,
		// as in production: the kcm identity alone may not manage Deployments.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file", c.saKey,
		"--root-ca-file", c.pki.CAFile,
		// No kubelets heartbeat here, and the cloud controllers belong to the
		// CCM under test; kube-controller-manager keeps the rest
		// (EndpointSlices, tokens, namespaces, garbage collection).
		"--controllers", KCMControllers,
		"--v", "1",
	}, filepath.Join(c.Dir, "kube-controller-manager.log"), nil)
	if err != nil {
		return err
	}
	c.ControllerManager = p
	// kube-controller-manager has no readiness endpoint with --secure-port=0:
	// wait for the default service account, which its token controller makes.
	wctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	err = Poll(wctx, 500*time.Millisecond, p, func() (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(wctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kube-controller-manager not working: %w", err)
	}
	return nil
}

// KCMControllers is kube-controller-manager's controller list here.
const KCMControllers = "*,-node-lifecycle-controller,-node-ipam-controller"

// Kubectl returns an exec.Cmd for the pinned kubectl against this cluster.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.ToolsBin, "kubectl"), append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...)
	return cmd
}

// Stop kills every process started (CCMs, simulators, control plane) by
// process group and removes the directory. Safe to call more than once.
func (c *Cluster) Stop() { c.stop(false) }

// StopKeepLogs is Stop but leaves the *.log files (and nothing else) in Dir,
// for post-mortems after a failure.
func (c *Cluster) StopKeepLogs() { c.stop(true) }

func (c *Cluster) stop(keepLogs bool) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	ccms, sims := c.ccms, c.sims
	c.mu.Unlock()
	for _, m := range ccms {
		m.Process.Stop(5 * time.Second)
	}
	for _, s := range sims {
		s.Process.Stop(2 * time.Second)
	}
	c.Scheduler.Stop(5 * time.Second)
	c.ControllerManager.Stop(5 * time.Second)
	c.APIServer.Stop(10 * time.Second)
	c.Etcd.Stop(5 * time.Second)
	if c.Dir == "" {
		return
	}
	if !keepLogs {
		_ = os.RemoveAll(c.Dir)
		return
	}
	entries, _ := os.ReadDir(c.Dir)
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".log") {
			_ = os.RemoveAll(filepath.Join(c.Dir, e.Name()))
		}
	}
}

// LogFiles lists every process log of this cluster.
func (c *Cluster) LogFiles() []string {
	m, _ := filepath.Glob(filepath.Join(c.Dir, "*.log"))
	return m
}

// Processes lists every process started and not yet reaped.
func (c *Cluster) Processes() []*Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Process
	for _, p := range []*Process{c.Etcd, c.APIServer, c.ControllerManager, c.Scheduler} {
		if p != nil {
			out = append(out, p)
		}
	}
	for _, s := range c.sims {
		out = append(out, s.Process)
	}
	for _, m := range c.ccms {
		out = append(out, m.Process)
	}
	return out
}
