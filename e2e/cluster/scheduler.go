package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// startScheduler runs the pinned kube-scheduler as system:kube-scheduler
// (bound by the API server's bootstrap RBAC), so pods are placed by the real
// node affinity, taint, host-port and anti-affinity checks. Only the chart's
// scheduling test asks for it; the other tests bind pods with EmulatePods.
func (c *Cluster) startScheduler(ctx context.Context) error {
	bin := filepath.Join(c.ToolsBin, "kube-scheduler")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("kube-scheduler missing in %s (run hack/build-tools.sh): %w", c.ToolsBin, err)
	}
	cert, key, err := c.pki.issue("scheduler", "system:kube-scheduler", nil, nil)
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(c.Dir, "scheduler.kubeconfig")
	if err := c.writeKubeconfig(kubeconfig, "scheduler", cert, key); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.logf("starting kube-scheduler")
	p, err := startProcess("kube-scheduler", bin, []string{
		"--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig,
		"--authorization-kubeconfig", kubeconfig,
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port),
		"--cert-dir", filepath.Join(c.Dir, "scheduler-certs"),
		"--leader-elect=false",
		"--v", "1",
	}, filepath.Join(c.Dir, "kube-scheduler.log"), nil)
	if err != nil {
		return err
	}
	c.Scheduler = p
	// Its self-signed serving certificate is of no interest here: /healthz
	// only says whether it is up.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // 127.0.0.1 health probe
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = Poll(wctx, 250*time.Millisecond, p, func() (bool, error) {
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("kube-scheduler not healthy: %w", err)
	}
	return nil
}
