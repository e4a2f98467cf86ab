package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// cp is the control plane (etcd, kube-apiserver, kube-controller-manager)
// shared by every test of this binary: starting one costs seconds, and tests
// isolate themselves with their own simulator, CCM, lease, namespace and
// Nodes (see newEnv). Tests therefore never run in parallel.
var cp *cluster.Cluster

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	start := time.Now()
	var err error
	cp, err = cluster.Start(ctx, cluster.Options{
		ControllerManager: true,
		Logf:              func(f string, a ...any) { fmt.Printf("e2e: "+f+"\n", a...) },
	})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: control plane: %v\n", err)
		os.Exit(1)
	}
	// Build both binaries up front so per-test deadlines measure behaviour.
	bctx, bcancel := context.WithTimeout(context.Background(), 15*time.Minute)
	if _, err := cp.CCMBinary(bctx); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		cp.Stop()
		os.Exit(1)
	}
	if _, err := cp.SimulatorBinary(bctx); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		cp.Stop()
		os.Exit(1)
	}
	bcancel()
	fmt.Printf("e2e: control plane ready in %s (dir %s)\n", time.Since(start).Round(100*time.Millisecond), cp.Dir)

	// Ctrl-C must not leave processes behind (children also get SIGKILL when
	// this process dies, via Pdeathsig).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		cp.Stop()
		os.Exit(130)
	}()

	code := m.Run()
	if code != 0 && os.Getenv("E2E_KEEP_LOGS") != "0" {
		cp.StopKeepLogs()
		fmt.Printf("e2e: failed; logs kept in %s\n", cp.Dir)
	} else {
		cp.Stop()
	}
	os.Exit(code)
}
