package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports here.
const clockTicks = 100

// rssKB reads VmRSS of a process in KiB.
func rssKB(pid int) (int, error) { return statusKB(pid, "VmRSS") }

// statusKB reads one "<field>: N kB" line of /proc/<pid>/status.
func statusKB(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no %s for pid %d", field, pid)
}

// rssSplit is VmRSS's two parts: anonymous memory (heap, stacks, runtime)
// and file-backed pages (the executable's code and data read from disk,
// which the kernel can drop and read again).
func rssSplit(pid int) (anonKB, fileKB int) {
	anonKB, _ = statusKB(pid, "RssAnon")
	fileKB, _ = statusKB(pid, "RssFile")
	return anonKB, fileKB
}

// cpuTime reads user+system CPU time of a process.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces: split after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad cpu fields in /proc/%d/stat", pid)
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// rssSampler samples a process's RSS every interval and keeps the peak since
// the last Mark.
type rssSampler struct {
	mu      sync.Mutex
	pid     int
	peak    int
	last    int
	overall int
}

func (r *rssSampler) run(stop <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.sample()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (r *rssSampler) sample() {
	kb, err := rssKB(r.pid)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = kb
	r.peak = max(r.peak, kb)
	r.overall = max(r.overall, kb)
}

// Mark starts a new peak window.
func (r *rssSampler) Mark() {
	r.mu.Lock()
	r.peak = 0
	r.mu.Unlock()
	r.sample()
}

// Peak since Mark, last sample and the run's peak, in KiB.
func (r *rssSampler) Peak() (peak, last, overall int) {
	r.sample()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak, r.last, r.overall
}

// countInLog counts lines containing substr in path from byte offset on.
func countInLog(path string, offset int64, substr string) int {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return 0
	}
	return bytes.Count(b[offset:], []byte(substr))
}

// countLines counts lines of path from byte offset on that contain every
// one of substrs.
func countLines(path string, offset int64, substrs ...string) int {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return 0
	}
	n := 0
	for _, l := range bytes.Split(b[offset:], []byte("\n")) {
		all := true
		for _, s := range substrs {
			if !bytes.Contains(l, []byte(s)) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
