package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/sweep"
)

// Sweeper builds the runner that removes appliances of Services that are
// gone (see package sweep and docs/load-balancers.md). It shares the
// adapter's executor, so a shutdown requested by either side is not
// requested twice, and frees the adapter's address reservations of the
// Services it sweeps. It fails when the configuration turns the sweep off or
// names no cluster.
func (l *Engine) Sweeper(services sweep.ServiceLister) (*sweep.Runner, error) {
	if l.cfg.SweepIntervalSec <= 0 {
		return nil, errors.New("the sweep is off (loadBalancer.sweepIntervalSec is 0)")
	}
	if l.clusterID == "" {
		return nil, errors.New("no cluster ID: the sweep cannot tell this cluster's load balancers apart")
	}
	if services == nil {
		return nil, errors.New("no Kubernetes client to list Services with")
	}
	mode, err := sweep.ParseMode(l.cfg.SweepMode)
	if err != nil {
		return nil, fmt.Errorf("cloud-config loadBalancer.sweepMode: %w", err)
	}
	return &sweep.Runner{
		Exec:     l.exec,
		ELBs:     l.elbs(l.clusterID),
		Services: services,
		Mode:     mode,
		Interval: time.Duration(l.cfg.SweepIntervalSec) * time.Second,
		Grace:    sweep.DefaultGrace,
		LockKey:  func(key string) func() { return l.locks.lock(sharedOwner(key)) },
		OnDeleted: func(uids []string) {
			for _, u := range uids {
				l.mem.release(u)
			}
		},
	}, nil
}
