package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// One control plane (etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler) for the tests of this package that install the chart, started
// by the first of them and stopped by TestMain.
var (
	cpOnce sync.Once
	cp     *cluster.Cluster
	cpErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		if code != 0 && os.Getenv("E2E_KEEP_LOGS") != "0" {
			cp.StopKeepLogs()
			fmt.Printf("chart: failed; logs kept in %s\n", cp.Dir)
		} else {
			cp.Stop()
		}
	}
	os.Exit(code)
}

// controlPlane returns the shared control plane, starting it on first use.
func controlPlane(t *testing.T) *cluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	cpOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cp, cpErr = cluster.Start(ctx, cluster.Options{
			ControllerManager: true,
			Scheduler:         true,
			Logf:              func(f string, a ...any) { fmt.Printf("chart: "+f+"\n", a...) },
		})
	})
	if cpErr != nil {
		t.Fatalf("control plane: %v", cpErr)
	}
	return cp
}

// kubectl runs the pinned kubectl against the shared control plane.
func kubectl(t *testing.T, c *cluster.Cluster, stdin []byte, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.Kubectl(ctx, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
