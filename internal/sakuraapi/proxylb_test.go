package sakuraapi

import (
	"context"
	"net/http"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// scriptedProxyLBs answers the ELB operations below with the scripted
// status codes in order; the others are not implemented.
type scriptedProxyLBs struct {
	iaas.ProxyLBAPI
	script
}

func (s *scriptedProxyLBs) answer() (*iaas.ProxyLB, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return &iaas.ProxyLB{ID: 2}, nil
}

func (s *scriptedProxyLBs) Create(context.Context, *iaas.ProxyLBCreateRequest) (*iaas.ProxyLB, error) {
	return s.answer()
}

func (s *scriptedProxyLBs) Read(context.Context, types.ID) (*iaas.ProxyLB, error) { return s.answer() }

func (s *scriptedProxyLBs) ChangePlan(context.Context, types.ID, *iaas.ProxyLBChangePlanRequest) (*iaas.ProxyLB, error) {
	return s.answer()
}

func (s *scriptedProxyLBs) SetCertificates(context.Context, types.ID, *iaas.ProxyLBSetCertificatesRequest) (*iaas.ProxyLBCertificates, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return &iaas.ProxyLBCertificates{}, nil
}

// TestProxyLBRetryPolicy: reads and certificate writes are retried like
// every call; a Create or ChangePlan is retried only after a 429 (the API
// did nothing), because a carried-out attempt makes a new ELB or ID.
func TestProxyLBRetryPolicy(t *testing.T) {
	unavailable, throttled := http.StatusServiceUnavailable, http.StatusTooManyRequests
	for _, tc := range []struct {
		op       string
		codes    []int
		attempts int
		ok       bool
	}{
		{"Read", []int{unavailable, 0}, 2, true},
		{"SetCertificates", []int{unavailable, 0}, 2, true},
		{"Create", []int{unavailable, 0}, 1, false},
		{"Create", []int{throttled, 0}, 2, true},
		{"ChangePlan", []int{unavailable, 0}, 1, false},
		{"ChangePlan", []int{throttled, 0}, 2, true},
	} {
		c, _, _ := newTestClient(testLimits())
		s := &scriptedProxyLBs{script: script{codes: tc.codes}}
		c.UseProxyLBOp(s)
		ctx := context.Background()
		var err error
		switch tc.op {
		case "Read":
			_, err = c.ProxyLBs.Read(ctx, 1)
		case "SetCertificates":
			_, err = c.ProxyLBs.SetCertificates(ctx, 1, &iaas.ProxyLBSetCertificatesRequest{})
		case "Create":
			_, err = c.ProxyLBs.Create(ctx, &iaas.ProxyLBCreateRequest{})
		case "ChangePlan":
			_, err = c.ProxyLBs.ChangePlan(ctx, 1, &iaas.ProxyLBChangePlanRequest{})
		}
		if s.attempts != tc.attempts || (err == nil) != tc.ok {
			t.Errorf("%s %v: %d attempts, err %v; want %d attempts, ok %v", tc.op, tc.codes, s.attempts, err, tc.attempts, tc.ok)
		}
		if got := c.Stats().Total(func(op string) bool { return op == "ProxyLB."+tc.op }); got != tc.attempts {
			t.Errorf("%s %v: counted %d calls, want %d", tc.op, tc.codes, got, tc.attempts)
		}
	}
}
