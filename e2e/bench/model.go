package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Counts is the simulator's request count per operation and HTTP status
// ("200", "429", "dropped", ...), as GET /_admin/requests reports it.
type Counts map[string]map[string]int

// Sub returns c minus before (operations and statuses absent from before
// count from zero).
func (c Counts) Sub(before Counts) Counts {
	out := Counts{}
	for op, m := range c {
		for st, n := range m {
			d := n - before[op][st]
			if d == 0 {
				continue
			}
			if out[op] == nil {
				out[op] = map[string]int{}
			}
			out[op][st] = d
		}
	}
	return out
}

// Add returns c plus o.
func (c Counts) Add(o Counts) Counts {
	out := Counts{}
	for _, src := range []Counts{c, o} {
		for op, m := range src {
			for st, n := range m {
				if out[op] == nil {
					out[op] = map[string]int{}
				}
				out[op][st] += n
			}
		}
	}
	return out
}

// writeVerbs are the operation suffixes that change cloud state.
var writeVerbs = map[string]bool{
	"Create": true, "Update": true, "UpdateSettings": true, "Delete": true,
	"Config": true, "Boot": true, "Shutdown": true, "Reset": true,
}

// IsWrite reports whether an operation name ("LoadBalancer.Create") is a write.
func IsWrite(op string) bool {
	i := strings.LastIndexByte(op, '.')
	return writeVerbs[op[i+1:]]
}

// Tally sums Counts into what the report shows.
type Tally struct {
	Total, Reads, Writes int
	// Throttled are answers 429 or 503: each is a request the client had to
	// repeat (or hand back to the controller's queue).
	Throttled int
	// Failed are other non-2xx answers (404 on purpose, 409 still_creating, ...).
	Failed int
	// ByOp is the total per operation.
	ByOp map[string]int
}

// Summarize tallies c. Every request counts, answered or not: a 429 is a
// read or write the API had to handle.
func Summarize(c Counts) Tally {
	t := Tally{ByOp: map[string]int{}}
	for op, m := range c {
		for st, n := range m {
			t.Total += n
			t.ByOp[op] += n
			if IsWrite(op) {
				t.Writes += n
			} else {
				t.Reads += n
			}
			code, _ := strconv.Atoi(st)
			switch {
			case code == 429 || code == 503:
				t.Throttled += n
			case code >= 200 && code < 300:
			default:
				t.Failed += n
			}
		}
	}
	return t
}

// WritesOK counts writes answered 2xx (the writes that took effect).
func WritesOK(c Counts) int {
	n := 0
	for op, m := range c {
		if !IsWrite(op) {
			continue
		}
		for st, v := range m {
			if code, _ := strconv.Atoi(st); code >= 200 && code < 300 {
				n += v
			}
		}
	}
	return n
}

// OpsString lists operations by count, e.g. "LoadBalancer.Find 100, Server.Find 2".
func (t Tally) OpsString() string {
	type kv struct {
		k string
		v int
	}
	var l []kv
	for k, v := range t.ByOp {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].v != l[j].v {
			return l[i].v > l[j].v
		}
		return l[i].k < l[j].k
	})
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%s %d", e.k, e.v))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Naive is what a controller without shared caches would send for the same
// work: one LoadBalancer.Find plus one LoadBalancer.Read per Service sync,
// one Server.Read per node in every pass that needs node addresses (a
// node-status pass, a Service sync or node-sync pass, a node
// initialisation), and the same successful writes as measured. It is a
// lower bound for such a controller: it assumes no retries and no extra
// switch or router reads.
type Naive struct {
	ServiceSyncs int // LoadBalancer syncs (Ensure/Update/Delete calls)
	NodePasses   int // passes that read every node's server
	Nodes        int // nodes per pass
	NodeReads    int // single-server reads (node initialisations)
	Writes       int
}

// Reads of the naive approach.
func (n Naive) Reads() int { return 2*n.ServiceSyncs + n.NodePasses*n.Nodes + n.NodeReads }

// Total of the naive approach.
func (n Naive) Total() int { return n.Reads() + n.Writes }
