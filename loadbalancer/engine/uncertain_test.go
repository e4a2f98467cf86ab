package engine

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

// failingCreate answers the next creates with code; done says whether the
// appliance is made anyway (the answer lost after the work).
type failingCreate struct {
	sakuraapi.LoadBalancerAPI
	fail  int // creates left to fail
	code  int
	done  bool
	calls int
}

func (f *failingCreate) Create(ctx context.Context, zone string, req *iaas.LoadBalancerCreateRequest) (*iaas.LoadBalancer, error) {
	f.calls++
	if f.fail == 0 {
		return f.LoadBalancerAPI.Create(ctx, zone, req)
	}
	f.fail--
	if f.done {
		if _, err := f.LoadBalancerAPI.Create(ctx, zone, req); err != nil {
			return nil, err
		}
	}
	return nil, iaas.NewAPIError("POST", nil, f.code, &iaas.APIErrorResponse{ErrorCode: "fault"})
}

func (e *env) failCreates(n, code int, done bool) *failingCreate {
	f := &failingCreate{LoadBalancerAPI: e.client.LoadBalancers, fail: n, code: code, done: done}
	e.client.LoadBalancers = f
	return f
}

// A create whose answer is uncertain is never simply sent again: the
// appliance is looked for by its tags first, for UnavailableCreateGrace
// after a 503 (answered before the API does anything) and for
// CreateVisibilityGrace after a 500 or a lost answer.
func TestUncertainCreates(t *testing.T) {
	for _, c := range []struct {
		name       string
		code       int
		done       bool
		wantCreate int // creates sent while the grace runs
		wantLBs    int
	}{
		{"503, nothing made: created again after the short grace", http.StatusServiceUnavailable, false, 2, 1},
		{"500, nothing made: not sent again within the grace", http.StatusInternalServerError, false, 1, 0},
		{"500 after the appliance was made: found by its tags", http.StatusInternalServerError, true, 1, 1},
		{"503 after the appliance was made: found by its tags", http.StatusServiceUnavailable, true, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			old := UnavailableCreateGrace
			UnavailableCreateGrace = 30 * time.Millisecond
			defer func() { UnavailableCreateGrace = old }()
			e := newEnv(t, 27)
			nodes := e.addNodes(3, 0)
			f := e.failCreates(1, c.code, c.done)
			svc := service("web", 80)
			if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
				t.Fatalf("create answered %d: want a RetryError, got %v", c.code, err)
			}
			deadline := time.Now().Add(200 * time.Millisecond) // past the short grace, well within the long one
			for time.Now().Before(deadline) {
				_, _ = e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
				time.Sleep(5 * time.Millisecond)
			}
			if f.calls != c.wantCreate {
				t.Errorf("%d creates sent, want %d", f.calls, c.wantCreate)
			}
			if n := len(e.lbs()); n != c.wantLBs {
				t.Errorf("%d appliances, want %d", n, c.wantLBs)
			}
		})
	}
}

// failingConfig answers Config with an error while fail is set: the process
// died between saving settings and applying them.
type failingConfig struct {
	sakuraapi.LoadBalancerAPI
	fail    bool
	configs int
}

func (f *failingConfig) Config(ctx context.Context, zone string, id types.ID) error {
	f.configs++
	if f.fail {
		return iaas.NewAPIError("PUT", nil, http.StatusInternalServerError, &iaas.APIErrorResponse{ErrorCode: "fault"})
	}
	return f.LoadBalancerAPI.Config(ctx, zone, id)
}

// TestSavedSettingsAreAppliedAfterARestart is issue #18's defect 9: a
// restart between saving a change the health poll cannot see (health check,
// delay loop) and its Config must not leave it saved and never applied. The
// mark in the appliance's description survives the restart; once applied,
// it is taken off.
func TestSavedSettingsAreAppliedAfterARestart(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(svc *v1.Service)
	}{
		{"health check", func(svc *v1.Service) { svc.Annotations[annotations.HealthCheckProtocol] = "tcp" }},
		{"delay loop", func(svc *v1.Service) { svc.Annotations[annotations.HealthzInterval] = "30" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 28)
			nodes := e.addNodes(2, 0)
			svc := service("web", 80)
			e.ensureUp(svc, nodes)
			f := &failingConfig{LoadBalancerAPI: e.client.LoadBalancers, fail: true}
			e.client.LoadBalancers = f
			c.set(svc)
			if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err == nil {
				t.Fatal("the Config failed but the sync succeeded")
			}
			if lb := e.lbs()[0]; !desired.ConfigPending(lb.Description) {
				t.Fatalf("saved, not applied, and nothing in the cloud says so: %q", lb.Description)
			}
			e.rebuild() // the process died: its memory of the failed Config is gone
			f.fail, f.configs = false, 0
			if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
				t.Fatal(err)
			}
			if f.configs != 1 {
				t.Fatalf("the restarted controller sent %d Configs, want 1", f.configs)
			}
			if lb := e.lbs()[0]; desired.ConfigPending(lb.Description) {
				t.Fatalf("the mark stays after the Config: %q", lb.Description)
			}
			// In line now: no more writes.
			snap := e.client.Stats().Snapshot()
			if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
				t.Fatal(err)
			}
			if n, by := writes(e.client, snap); n != 0 {
				t.Fatalf("a resync after the Config wrote %v", by)
			}
		})
	}
}
