package loadbalancer

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud/sakuraapi"
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
