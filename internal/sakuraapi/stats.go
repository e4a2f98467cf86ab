package sakuraapi

import (
	"errors"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
)

// Results a call is counted under.
const (
	ResultOK          = "ok"
	ResultNotFound    = "not_found"
	ResultThrottled   = "throttled"   // 429
	ResultUnavailable = "unavailable" // 503 or 423
	ResultError       = "error"       // anything else
)

func resultOf(err error) string {
	if err == nil {
		return ResultOK
	}
	var apiErr iaas.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ResponseCode() {
		case http.StatusNotFound:
			return ResultNotFound
		case http.StatusTooManyRequests:
			return ResultThrottled
		case http.StatusServiceUnavailable, http.StatusLocked:
			return ResultUnavailable
		}
	}
	return ResultError
}

// CallKey names one operation and how it ended.
type CallKey struct {
	Op     string // e.g. "LoadBalancer.Create"
	Result string
}

// Observer is told about every attempt; the metrics package implements it.
type Observer interface {
	ObserveCall(op, result string, d time.Duration)
	ObserveRetry(op, result string)
}

// Stats counts calls per operation and result. It is safe for concurrent use.
type Stats struct {
	mu        sync.Mutex
	calls     map[CallKey]int
	retries   map[CallKey]int
	observers []Observer
}

// NewStats returns empty counters.
func NewStats() *Stats {
	return &Stats{calls: map[CallKey]int{}, retries: map[CallKey]int{}}
}

// AddObserver registers o to see every later call.
func (s *Stats) AddObserver(o Observer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observers = append(s.observers, o)
}

func (s *Stats) record(op, result string, d time.Duration) {
	s.mu.Lock()
	s.calls[CallKey{op, result}]++
	obs := s.observers
	s.mu.Unlock()
	for _, o := range obs {
		o.ObserveCall(op, result, d)
	}
}

func (s *Stats) recordRetry(op, result string) {
	s.mu.Lock()
	s.retries[CallKey{op, result}]++
	obs := s.observers
	s.mu.Unlock()
	for _, o := range obs {
		o.ObserveRetry(op, result)
	}
}

// Snapshot returns a copy of the call counters.
func (s *Stats) Snapshot() map[CallKey]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[CallKey]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// Retries returns a copy of the retry counters.
func (s *Stats) Retries() map[CallKey]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[CallKey]int, len(s.retries))
	for k, v := range s.retries {
		out[k] = v
	}
	return out
}

// Total counts calls whose operation satisfies match (all calls if nil).
func (s *Stats) Total(match func(op string) bool) int {
	n := 0
	for k, v := range s.Snapshot() {
		if match == nil || match(k.Op) {
			n += v
		}
	}
	return n
}

// IsWrite reports whether op changes cloud state.
func IsWrite(op string) bool {
	for _, suffix := range []string{".Create", ".Update", ".UpdateSettings", ".Delete", ".Config", ".Shutdown", ".Boot",
		".ChangePlan", ".SetCertificates", ".DeleteCertificates", ".RenewLetsEncryptCert"} {
		if len(op) >= len(suffix) && op[len(op)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}

// Ops lists the operations seen, sorted, for stable reports.
func (s *Stats) Ops() []string {
	seen := map[string]bool{}
	for k := range s.Snapshot() {
		seen[k.Op] = true
	}
	ops := make([]string, 0, len(seen))
	for op := range seen {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}
