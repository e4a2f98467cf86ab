package sakuraapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// scriptedServers answers Read with the scripted HTTP status codes in order
// (0 = success) and counts attempts. Other operations are not implemented.
type scriptedServers struct {
	iaas.ServerAPI
	script
}

// script answers each attempt with the next scripted HTTP status code (0:
// success); attempts counts them.
type script struct {
	mu       sync.Mutex
	codes    []int
	attempts int
}

func (s *script) next() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := 0
	if s.attempts < len(s.codes) {
		code = s.codes[s.attempts]
	}
	s.attempts++
	if code != 0 {
		return apiError(code)
	}
	return nil
}

func apiError(code int) error {
	u, _ := url.Parse("http://127.0.0.1/is1a/api/cloud/1.1/server/1")
	return iaas.NewAPIError(http.MethodGet, u, code, &iaas.APIErrorResponse{
		Status: http.StatusText(code), ErrorCode: "scripted", ErrorMessage: "scripted answer",
	})
}

func (s *scriptedServers) Read(ctx context.Context, zone string, id types.ID) (*iaas.Server, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return &iaas.Server{ID: id, Name: "srv"}, nil
}

func (s *scriptedServers) Find(ctx context.Context, zone string, c *iaas.FindCondition) (*iaas.ServerFindResult, error) {
	return &iaas.ServerFindResult{}, nil
}

type sleepRecorder struct {
	mu     sync.Mutex
	waits  []time.Duration
	cancel context.CancelFunc // cancel the call's context on the first sleep, if set
}

func (r *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		return ctx.Err()
	}
	return nil
}

func newTestClient(limits Limits, codes ...int) (*Client, *scriptedServers, *sleepRecorder) {
	c := NewFromCaller(nil, "is1a", limits)
	s := &scriptedServers{script: script{codes: codes}}
	c.UseServerOp(s)
	r := &sleepRecorder{}
	c.sleep = r.sleep
	return c, s, r
}

func testLimits() Limits {
	l := DefaultLimits()
	l.RequestsPerSecond = 0 // unlimited: these tests are about retries
	l.RetryMax = 3
	l.RetryWaitMin = 100 * time.Millisecond
	l.RetryWaitMax = 2 * time.Second
	return l
}

func TestRetryIsBoundedOnRetryableAnswers(t *testing.T) {
	for _, tc := range []struct {
		code   int
		result string
		minGap time.Duration
	}{
		{http.StatusTooManyRequests, ResultThrottled, time.Second}, // a 429 waits at least 1s
		{http.StatusServiceUnavailable, ResultUnavailable, 100 * time.Millisecond},
		{http.StatusLocked, ResultUnavailable, 100 * time.Millisecond},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			c, s, r := newTestClient(testLimits(), tc.code, tc.code, tc.code, tc.code, tc.code, tc.code)
			_, err := c.Servers.Read(context.Background(), "is1a", 1)
			var apiErr iaas.APIError
			if !errors.As(err, &apiErr) || apiErr.ResponseCode() != tc.code {
				t.Fatalf("err = %v, want API error %d", err, tc.code)
			}
			if !strings.HasPrefix(err.Error(), "Server.Read: ") {
				t.Errorf("error does not name the operation: %v", err)
			}
			if s.attempts != 4 || len(r.waits) != 3 {
				t.Fatalf("attempts=%d sleeps=%d, want 4 attempts (1 + RetryMax 3) and 3 sleeps", s.attempts, len(r.waits))
			}
			for _, w := range r.waits {
				if w < tc.minGap || w > 2*time.Second {
					t.Errorf("wait %v outside [%v, 2s]", w, tc.minGap)
				}
			}
			if got := c.Stats().Snapshot()[CallKey{"Server.Read", tc.result}]; got != 4 {
				t.Errorf("counted %d %s calls, want 4", got, tc.result)
			}
			if got := c.Stats().Retries()[CallKey{"Server.Read", tc.result}]; got != 3 {
				t.Errorf("counted %d retries, want 3", got)
			}
		})
	}
}

func TestRetryThenSuccess(t *testing.T) {
	c, s, r := newTestClient(testLimits(), http.StatusServiceUnavailable, http.StatusTooManyRequests)
	srv, err := c.Servers.Read(context.Background(), "is1a", 42)
	if err != nil || srv.ID != 42 {
		t.Fatalf("srv=%v err=%v", srv, err)
	}
	if s.attempts != 3 || len(r.waits) != 2 {
		t.Fatalf("attempts=%d sleeps=%d", s.attempts, len(r.waits))
	}
	snap := c.Stats().Snapshot()
	if snap[CallKey{"Server.Read", ResultOK}] != 1 || snap[CallKey{"Server.Read", ResultUnavailable}] != 1 ||
		snap[CallKey{"Server.Read", ResultThrottled}] != 1 {
		t.Errorf("counts = %v", snap)
	}
}

func TestNoRetryOnFinalAnswers(t *testing.T) {
	for _, tc := range []struct {
		code   int
		result string
	}{
		{http.StatusNotFound, ResultNotFound},
		{http.StatusBadRequest, ResultError},
		{http.StatusConflict, ResultError},
		{http.StatusInternalServerError, ResultError},
	} {
		c, s, r := newTestClient(testLimits(), tc.code, tc.code)
		_, err := c.Servers.Read(context.Background(), "is1a", 1)
		if err == nil || s.attempts != 1 || len(r.waits) != 0 {
			t.Errorf("%d: err=%v attempts=%d sleeps=%d, want one attempt", tc.code, err, s.attempts, len(r.waits))
		}
		if IsNotFound(err) != (tc.code == http.StatusNotFound) || StatusCode(err) != tc.code {
			t.Errorf("%d: IsNotFound=%v StatusCode=%d after wrapping", tc.code, IsNotFound(err), StatusCode(err))
		}
		if got := c.Stats().Snapshot()[CallKey{"Server.Read", tc.result}]; got != 1 {
			t.Errorf("%d: counted %d %s", tc.code, got, tc.result)
		}
		if len(c.Stats().Retries()) != 0 {
			t.Errorf("%d: retries counted: %v", tc.code, c.Stats().Retries())
		}
	}
}

func TestRetryMaxZeroNeverRetries(t *testing.T) {
	l := testLimits()
	l.RetryMax = 0
	c, s, r := newTestClient(l, http.StatusTooManyRequests)
	if _, err := c.Servers.Read(context.Background(), "is1a", 1); err == nil {
		t.Fatal("want error")
	}
	if s.attempts != 1 || len(r.waits) != 0 {
		t.Fatalf("attempts=%d sleeps=%d", s.attempts, len(r.waits))
	}
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	c, s, r := newTestClient(testLimits(), 503, 503, 503, 503)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	_, err := c.Servers.Read(ctx, "is1a", 1)
	if err == nil || s.attempts != 1 || len(r.waits) != 1 {
		t.Fatalf("err=%v attempts=%d sleeps=%d: a cancelled wait must end the call", err, s.attempts, len(r.waits))
	}
}

// TestSharedBudget: every operation draws from one token bucket. With a burst
// of one and a near-zero refill, the first call takes the only token and the
// next call, of another resource, cannot get one before its deadline.
func TestSharedBudget(t *testing.T) {
	l := testLimits()
	l.RequestsPerSecond = 0.001
	l.Burst = 1
	c, s, _ := newTestClient(l)
	if _, err := c.Servers.Read(context.Background(), "is1a", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Servers.Find(ctx, "is1a", nil)
	if err == nil || !strings.Contains(err.Error(), "waiting for the API request budget") {
		t.Fatalf("second call got a token from a separate budget: %v", err)
	}
	if s.attempts != 1 {
		t.Errorf("attempts=%d", s.attempts)
	}
	if got := c.Stats().Snapshot()[CallKey{"Server.Find", ResultError}]; got != 1 {
		t.Errorf("budget failure not counted: %v", c.Stats().Snapshot())
	}
}

func TestBackoffBounds(t *testing.T) {
	c := NewFromCaller(nil, "is1a", Limits{RetryWaitMin: 200 * time.Millisecond, RetryWaitMax: 3 * time.Second})
	for i := 0; i < 50; i++ {
		w := c.newWaits()
		for attempt := 0; attempt < 70; attempt++ {
			d := w.next(ResultUnavailable)
			// The ceiling doubles from the minimum: 200ms, 400ms, 800ms, ... 3s.
			ceiling := min(200*time.Millisecond<<min(attempt, 10), 3*time.Second)
			if d < 200*time.Millisecond || d > ceiling {
				t.Fatalf("attempt %d: %v outside [200ms, %v]", attempt, d, ceiling)
			}
			if attempt == 0 && d != 200*time.Millisecond {
				t.Fatalf("first wait %v, want the minimum 200ms", d)
			}
		}
		w = c.newWaits()
		for attempt := 0; attempt < 70; attempt++ {
			if d := w.next(ResultThrottled); d < time.Second || d > 3*time.Second {
				t.Fatalf("attempt %d (429): %v outside [1s, 3s]", attempt, d)
			}
		}
	}
	// Waits are spread (full jitter), not all at the ceiling.
	seen := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		w := c.newWaits()
		w.next(ResultUnavailable)
		w.next(ResultUnavailable)
		seen[w.next(ResultUnavailable)] = true
	}
	if len(seen) < 5 {
		t.Errorf("third waits %v: not jittered", seen)
	}
	// A max below the 429 floor still never exceeds the floor.
	c = NewFromCaller(nil, "is1a", Limits{RetryWaitMin: 0, RetryWaitMax: 0})
	if d := c.newWaits().next(ResultThrottled); d != time.Second {
		t.Errorf("429 with zero limits waited %v, want 1s", d)
	}
}

func TestIsWriteAndOps(t *testing.T) {
	for op, want := range map[string]bool{"LoadBalancer.Create": true, "LoadBalancer.UpdateSettings": true,
		"LoadBalancer.Config": true, "Server.Find": false, "Server.Read": false, "LoadBalancer.Status": false,
		"ProxyLB.ChangePlan": true, "ProxyLB.SetCertificates": true, "ProxyLB.DeleteCertificates": true,
		"ProxyLB.RenewLetsEncryptCert": true, "ProxyLB.GetCertificates": false, "ProxyLB.HealthStatus": false} {
		if IsWrite(op) != want {
			t.Errorf("IsWrite(%s) != %v", op, want)
		}
	}
	c, _, _ := newTestClient(testLimits())
	_, _ = c.Servers.Read(context.Background(), "is1a", 1)
	_, _ = c.Servers.Find(context.Background(), "is1a", nil)
	if got := strings.Join(c.Stats().Ops(), ","); got != "Server.Find,Server.Read" {
		t.Errorf("Ops = %s", got)
	}
	if c.Stats().Total(nil) != 2 || c.Stats().Total(IsWrite) != 0 {
		t.Errorf("Total = %d", c.Stats().Total(nil))
	}
}

type countingObserver struct {
	mu             sync.Mutex
	calls, retries int
}

func (o *countingObserver) ObserveCall(op, result string, d time.Duration) {
	o.mu.Lock()
	o.calls++
	o.mu.Unlock()
}

func (o *countingObserver) ObserveRetry(op, result string) { o.mu.Lock(); o.retries++; o.mu.Unlock() }

func TestObserverSeesEveryAttempt(t *testing.T) {
	c, _, _ := newTestClient(testLimits(), 503)
	o := &countingObserver{}
	c.Stats().AddObserver(o)
	if _, err := c.Servers.Read(context.Background(), "is1a", 1); err != nil {
		t.Fatal(err)
	}
	if o.calls != 2 || o.retries != 1 {
		t.Errorf("observer saw %d calls, %d retries", o.calls, o.retries)
	}
}

func TestErrorHelpersLookThroughWrapping(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1/")
	still := fmt.Errorf("LoadBalancer.Read: %w", iaas.NewAPIError("GET", u, http.StatusConflict, &iaas.APIErrorResponse{ErrorCode: "still_creating"}))
	if !IsStillCreating(still) || IsNotFound(still) || StatusCode(still) != 409 {
		t.Errorf("still_creating not recognised through wrapping")
	}
	if IsNotFound(errors.New("plain")) || StatusCode(nil) != 0 || IsStillCreating(nil) {
		t.Errorf("non-API errors misclassified")
	}
}

// scriptedCreates answers LoadBalancer.Create with the scripted codes.
type scriptedCreates struct {
	iaas.LoadBalancerAPI
	script
}

func (s *scriptedCreates) Create(ctx context.Context, zone string, p *iaas.LoadBalancerCreateRequest) (*iaas.LoadBalancer, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return &iaas.LoadBalancer{ID: 7}, nil
}

// A create is not replayed on a 503, 423 or 500: the appliance may have been
// made, and only the caller, which looks for it by its tags first, may try
// again. A 429 is refused before any work and is retried as usual.
func TestCreateIsNotReplayedBlindly(t *testing.T) {
	for _, tc := range []struct {
		code     int
		attempts int
		notDone  bool
	}{
		{http.StatusServiceUnavailable, 1, false},
		{http.StatusLocked, 1, true},
		{http.StatusInternalServerError, 1, false},
		{http.StatusTooManyRequests, 2, true},
	} {
		c := NewFromCaller(nil, "is1a", testLimits())
		c.sleep = (&sleepRecorder{}).sleep
		s := &scriptedCreates{script: script{codes: []int{tc.code}}}
		c.LoadBalancers = &loadBalancerOp{c, s}
		_, err := c.LoadBalancers.Create(context.Background(), "is1a", &iaas.LoadBalancerCreateRequest{})
		if s.attempts != tc.attempts {
			t.Errorf("%d: %d attempts, want %d", tc.code, s.attempts, tc.attempts)
		}
		if tc.code != http.StatusTooManyRequests && NotDone(err) != tc.notDone {
			t.Errorf("%d: NotDone = %v, want %v", tc.code, NotDone(err), tc.notDone)
		}
	}
}

type scriptedSettings struct {
	iaas.LoadBalancerAPI
	script
}

func (s *scriptedSettings) UpdateSettings(ctx context.Context, zone string, id types.ID, p *iaas.LoadBalancerUpdateSettingsRequest) (*iaas.LoadBalancer, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return &iaas.LoadBalancer{ID: id}, nil
}

// A refused replay of a write whose earlier attempt may have been carried
// out is not "not done" (issue #18, defect 8): a 503 answered after the
// settings were saved, then a 409 on the stale settings hash.
func TestRefusedReplayIsNotNotDone(t *testing.T) {
	for _, tc := range []struct {
		codes   []int
		notDone bool
	}{
		{[]int{http.StatusConflict}, true},
		{[]int{http.StatusServiceUnavailable, http.StatusConflict}, false},
		{[]int{http.StatusTooManyRequests, http.StatusConflict}, true}, // a 429 comes before any work
		{[]int{http.StatusLocked, http.StatusConflict}, true},
		{[]int{http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusBadRequest}, false},
	} {
		c := NewFromCaller(nil, "is1a", testLimits())
		c.sleep = (&sleepRecorder{}).sleep
		s := &scriptedSettings{script: script{codes: tc.codes}}
		c.LoadBalancers = &loadBalancerOp{c, s}
		_, err := c.LoadBalancers.UpdateSettings(context.Background(), "is1a", 7, &iaas.LoadBalancerUpdateSettingsRequest{})
		if err == nil || s.attempts != len(tc.codes) {
			t.Fatalf("%v: %d attempts, err %v", tc.codes, s.attempts, err)
		}
		if NotDone(err) != tc.notDone {
			t.Errorf("%v: NotDone = %v, want %v (%v)", tc.codes, NotDone(err), tc.notDone, err)
		}
		if StatusCode(err) != tc.codes[len(tc.codes)-1] {
			t.Errorf("%v: StatusCode = %d", tc.codes, StatusCode(err))
		}
	}
}

// TestOneBudgetAcrossZones: a call for another zone draws on the same
// budget (the server caches of every zone share the one client).
func TestOneBudgetAcrossZones(t *testing.T) {
	l := testLimits()
	l.RequestsPerSecond = 0.001
	l.Burst = 1
	c, _, _ := newTestClient(l)
	if _, err := c.Servers.Find(context.Background(), "is1a", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Servers.Find(ctx, "is1b", nil); err == nil || !strings.Contains(err.Error(), "waiting for the API request budget") {
		t.Fatalf("is1b got a token from a budget of its own: %v", err)
	}
}

// TestRetryNotice: a caller that asked is told each error before it is
// retried, with the operation's name; the call still retries to success.
func TestRetryNotice(t *testing.T) {
	c, _, _ := newTestClient(testLimits(), http.StatusServiceUnavailable, http.StatusServiceUnavailable)
	var told []error
	ctx := WithRetryNotice(context.Background(), func(err error) { told = append(told, err) })
	if _, err := c.Servers.Read(ctx, "is1a", 42); err != nil {
		t.Fatal(err)
	}
	if len(told) != 2 {
		t.Fatalf("told %v, want the two retried errors", told)
	}
	for _, err := range told {
		if !strings.HasPrefix(err.Error(), "Server.Read: ") || StatusCode(err) != http.StatusServiceUnavailable {
			t.Errorf("told %v", err)
		}
	}
}
