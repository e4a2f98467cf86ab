// Package sakuraapi is the controller's one door to the SAKURA Cloud API.
//
// Every operation goes through Client.call, which applies the process-wide
// request budget (a token bucket shared by all controllers), retries 429, 503
// and 423 answers a bounded number of times with jittered backoff, and counts
// each call by operation and result. Because the wrapping happens above
// iaas-api-go's operations, it works the same over HTTP and in the library's
// in-memory fake mode, so unit tests and benchmarks see the true call counts.
package sakuraapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/sacloud/iaas-api-go"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Limits tunes how the client spends the API's request budget.
type Limits struct {
	// RequestsPerSecond is the sustained rate shared by every caller in the process.
	RequestsPerSecond float64
	// Burst is how many requests may go out at once after a quiet period.
	Burst int
	// RetryMax is how many times a throttled or unavailable answer is retried (0 = never).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the jittered wait between retries.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// RequestTimeout bounds one attempt; zero leaves it to the caller's context.
	RequestTimeout time.Duration
}

// DefaultLimits match SAKURA Cloud's documented per-token limit with headroom.
func DefaultLimits() Limits {
	return Limits{
		RequestsPerSecond: 5,
		Burst:             5,
		RetryMax:          5,
		RetryWaitMin:      500 * time.Millisecond,
		RetryWaitMax:      8 * time.Second,
		RequestTimeout:    30 * time.Second,
	}
}

// Client holds the wrapped operations for one zone. Build one per process and
// share it: iaas-api-go keeps some settings in package globals.
type Client struct {
	Zone string

	Servers       ServerAPI
	Switches      SwitchAPI
	Bridges       BridgeAPI
	Internet      InternetAPI
	LoadBalancers LoadBalancerAPI
	// Appliances lists every appliance class of the zone (load balancers,
	// VPC routers, databases, NFS, mobile gateways) in one listing: the
	// address inventory and the locator read it.
	Appliances ApplianceAPI
	// ProxyLBs manages Enhanced Load Balancers, a global resource: their
	// calls take no zone (see ProxyLBAPI) but share this Client's budget.
	ProxyLBs ProxyLBAPI

	limits  Limits
	limiter *rate.Limiter
	stats   *Stats
	// sleep is replaceable so tests of the retry policy do not wait.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewFromCaller wraps the iaas-api-go operations built on caller.
func NewFromCaller(caller iaas.APICaller, zone string, limits Limits) *Client {
	c := &Client{Zone: zone, limits: limits, stats: NewStats(), sleep: sleepContext}
	burst := limits.Burst
	if burst < 1 {
		burst = 1
	}
	c.limiter = rate.NewLimiter(rate.Limit(limits.RequestsPerSecond), burst)
	if limits.RequestsPerSecond <= 0 {
		c.limiter = rate.NewLimiter(rate.Inf, burst)
	}
	c.Servers = &serverOp{c, iaas.NewServerOp(caller)}
	c.Switches = &switchOp{c, iaas.NewSwitchOp(caller)}
	c.Bridges = &bridgeOp{c, iaas.NewBridgeOp(caller)}
	c.Internet = &internetOp{c, iaas.NewInternetOp(caller)}
	c.LoadBalancers = &loadBalancerOp{c, iaas.NewLoadBalancerOp(caller)}
	c.ProxyLBs = &proxyLBOp{c, iaas.NewProxyLBOp(caller)}
	var appliances ApplianceAPI = &applianceCollection{caller}
	if caller == nil {
		// iaas-api-go's fake mode (tests build the Client without a caller).
		appliances = &appliancesByClass{c, iaas.NewVPCRouterOp(caller),
			iaas.NewDatabaseOp(caller), iaas.NewNFSOp(caller), iaas.NewMobileGatewayOp(caller)}
	}
	c.Appliances = &applianceOp{c, appliances}
	return c
}

// Stats returns the call counters of this client.
func (c *Client) Stats() *Stats { return c.stats }

// retryable reports whether an answer means "try again later" rather than "no".
func retryable(err error) bool {
	var apiErr iaas.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ResponseCode() {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusLocked:
		return true
	}
	return false
}

// throttled reports a 429: the API refused the request before doing anything.
func throttled(err error) bool {
	var apiErr iaas.APIError
	return errors.As(err, &apiErr) && apiErr.ResponseCode() == http.StatusTooManyRequests
}

// call runs one operation under the shared budget and retry policy.
func (c *Client) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	return c.callRetrying(ctx, op, retryable, fn)
}

// callNoReplay runs an operation that must not be sent twice blindly (a
// create: a 503 or a lost answer may hide an appliance that was made). Only
// a 429, which the API answers before doing anything, is retried; the
// caller looks for what a failed attempt may have made before trying again.
func (c *Client) callNoReplay(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	return c.callRetrying(ctx, op, throttled, fn)
}

// NotDone reports whether err certainly means the API did not carry out
// the request: an answer in the 4xx range (a refusal). A 5xx answer, a
// timeout or a dropped connection may come after the work was done.
//
// A refusal of a replay is not enough: when an earlier attempt of the same
// request got an answer that may come after the work (a 503 answered after
// the write was saved), the replay's 409 on the now stale settings hash
// says nothing about the first attempt (issue #18, defect 8).
func NotDone(err error) bool {
	var r *replayedError
	if errors.As(err, &r) {
		return false
	}
	code := StatusCode(err)
	return code >= 400 && code < 500
}

// replayedError is a refusal of a replayed request whose earlier attempt
// may have been carried out.
type replayedError struct{ err error }

func (e *replayedError) Error() string {
	return e.err.Error() + " (an earlier attempt may have been carried out)"
}
func (e *replayedError) Unwrap() error { return e.err }

func (c *Client) callRetrying(ctx context.Context, op string, retryable func(error) bool, fn func(ctx context.Context) error) error {
	var err error
	mayHaveDone := false // an earlier attempt's answer may follow the work
	waits := c.newWaits()
	for attempt := 0; ; attempt++ {
		if werr := c.limiter.Wait(ctx); werr != nil {
			c.stats.record(op, ResultError, 0)
			return fmt.Errorf("%s: waiting for the API request budget: %w", op, werr)
		}
		started := time.Now()
		err = c.attempt(ctx, fn)
		result := resultOf(err)
		c.stats.record(op, result, time.Since(started))
		if err == nil || !retryable(err) || attempt >= c.limits.RetryMax {
			break
		}
		mayHaveDone = mayHaveDone || !NotDone(err)
		c.stats.recordRetry(op, result)
		if notice, ok := ctx.Value(retryNoticeKey{}).(func(error)); ok {
			notice(fmt.Errorf("%s: %w", op, err))
		}
		if serr := c.sleep(ctx, waits.next(result)); serr != nil {
			break
		}
	}
	if err != nil {
		if mayHaveDone && NotDone(err) {
			err = &replayedError{err}
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

type retryNoticeKey struct{}

// WithRetryNotice returns ctx carrying notice, which every call made with
// it tells each error it is about to retry, before the wait. A caller that
// must not wait out retries (a server cache that others read) can answer
// at the first failure while the call goes on.
func WithRetryNotice(ctx context.Context, notice func(error)) context.Context {
	return context.WithValue(ctx, retryNoticeKey{}, notice)
}

func (c *Client) attempt(ctx context.Context, fn func(ctx context.Context) error) error {
	if c.limits.RequestTimeout <= 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, c.limits.RequestTimeout)
	defer cancel()
	return fn(ctx)
}

// retryWaits is one call's sequence of waits between retries: "full
// jitter", a random wait between RetryWaitMin and a ceiling that starts at
// RetryWaitMin and doubles up to RetryWaitMax (wait.Backoff's Factor and
// Cap), so a crowd of workers that were throttled together does not come
// back together. wait.Backoff's own Jitter is not used: it only adds on top
// of the step (d to d×(1+j)), which would pass RetryWaitMax and keep every
// wait at least at the ceiling. A 429 waits at least a second: the budget
// it ran into is per second.
type retryWaits struct {
	lo, hi  time.Duration
	ceiling wait.Backoff
}

func (c *Client) newWaits() *retryWaits {
	lo, hi := max(c.limits.RetryWaitMin, 0), c.limits.RetryWaitMax
	if hi < lo {
		hi = lo
	}
	return &retryWaits{lo: lo, hi: hi,
		ceiling: wait.Backoff{Duration: lo, Factor: 2, Cap: hi, Steps: math.MaxInt32}}
}

// next is the wait before the next retry of an answer with result.
func (w *retryWaits) next(result string) time.Duration {
	ceiling := w.ceiling.Step()
	if ceiling <= 0 || ceiling > w.hi {
		ceiling = w.hi
	}
	lo := w.lo
	if result == ResultThrottled && lo < time.Second {
		lo = time.Second
	}
	if ceiling <= lo {
		return lo
	}
	return lo + rand.N(ceiling-lo)
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
