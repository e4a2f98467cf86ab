// Command sakurasim serves the SAKURA Cloud API simulator on 127.0.0.1.
//
//	sakurasim --listen 127.0.0.1:0 --topology topology.yaml --token T --secret S \
//	  --boot-delay 3s --url-file /tmp/sim.url --seed 1
//
// It writes its base URL (e.g. http://127.0.0.1:39123) to --url-file once
// listening; use it as iaas-api-go's APIRootURL. SIGTERM/SIGINT stop it gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		log.Printf("sakurasim: %v", err)
		os.Exit(1)
	}
}

type flags struct {
	listen, topoPath, token, secret, urlFile string
	bootDelay, notFound                      time.Duration
	pageSize                                 int
	seed                                     int64
	acceptConflicts                          bool
}

func newFlagSet() (*flag.FlagSet, *flags) {
	f := &flags{}
	fs := flag.NewFlagSet("sakurasim", flag.ContinueOnError)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:0", "address to listen on (loopback only)")
	fs.StringVar(&f.topoPath, "topology", "", "topology file (YAML); empty = empty zone is1a")
	fs.StringVar(&f.token, "token", "", "expected access token (Basic-auth user)")
	fs.StringVar(&f.secret, "secret", "", "expected access token secret (Basic-auth password)")
	fs.DurationVar(&f.bootDelay, "boot-delay", 3*time.Second, "time a new load balancer stays migrating")
	fs.DurationVar(&f.notFound, "read-not-found-window", 0, "after create, reads of a new load balancer answer 404 for this long")
	fs.IntVar(&f.pageSize, "default-page-size", 20, "page size when a find asks Count 0")
	fs.StringVar(&f.urlFile, "url-file", "", "write the base URL here once listening")
	fs.Int64Var(&f.seed, "seed", 1, "seed for fault-injection randomness")
	fs.BoolVar(&f.acceptConflicts, "accept-conflicts", false, "accept and store load balancer writes that SAKURA is not known to refuse: an appliance IP or VIP already in use")
	return fs, f
}

// run serves until ctx is done (SIGTERM/SIGINT in main), then shuts down gracefully.
func run(ctx context.Context, args []string) error {
	fs, f := newFlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	listen, topoPath, urlFile := &f.listen, &f.topoPath, &f.urlFile
	token, secret, bootDelay, notFound, pageSize, seed := &f.token, &f.secret, &f.bootDelay, &f.notFound, &f.pageSize, &f.seed

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen must be a loopback address (127.0.0.0/8), got %q", host)
	}
	topo := &sakurasim.Topology{Zone: "is1a"}
	if *topoPath != "" {
		if topo, err = sakurasim.LoadTopology(*topoPath); err != nil {
			return err
		}
	}
	sim, err := sakurasim.Build(topo, sakurasim.Options{Token: *token, Secret: *secret, BootDelay: *bootDelay,
		ReadNotFoundWindow: *notFound, Seed: *seed, DefaultPageSize: *pageSize, AcceptConflicts: f.acceptConflicts})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if *urlFile != "" {
		// write atomically so a poller never reads a half-written URL
		tmp := filepath.Join(filepath.Dir(*urlFile), "."+filepath.Base(*urlFile)+".tmp")
		if err := os.WriteFile(tmp, []byte(base+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, *urlFile); err != nil {
			return err
		}
	}
	log.Printf("sakurasim: serving zone %s at %s (auth %v, boot delay %s, accept conflicts %v)", topo.Zone, base, *token != "", *bootDelay, f.acceptConflicts)

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		log.Printf("sakurasim: stopping")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
