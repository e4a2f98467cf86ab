package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one child process (etcd, kube-apiserver, the simulator, a CCM
// replica) started in its own process group, with stdout and stderr in a log
// file that outlives it for post-mortems.
type Process struct {
	Name    string
	LogFile string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	exitErr error
}

// startProcess runs bin with args, logging to logFile. The child gets its own
// process group (so Stop reaches anything it forks) and SIGKILL when the
// parent dies, so a crashed test binary leaves nothing behind.
func startProcess(name, bin string, args []string, logFile string, env []string) (*Process, error) {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogFile: logFile, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid of the process (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.exitErr
	default:
		return false, nil
	}
}

// Kill sends SIGKILL to the whole process group and waits for the exit: a
// crash, as far as the child can tell.
func (p *Process) Kill() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Stop asks politely (SIGTERM) and kills after grace.
func (p *Process) Stop(grace time.Duration) {
	if p == nil {
		return
	}
	if ok, _ := p.Exited(); ok {
		return
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
	// Reap anything left in the group even if the leader exited first.
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
}

// Log returns the whole log file.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogFile)
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string { return tailFile(p.LogFile, n) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// waitExitedErr is returned by waits when the process died while we waited.
func (p *Process) diedErr() error {
	_, err := p.Exited()
	return fmt.Errorf("%s exited early (%v); log %s:\n%s", p.Name, err, p.LogFile, p.Tail(30))
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. The port is
// released before use, so a rare race with another process is possible; the
// start-up waits surface that as a clear error.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Poll calls fn every interval until it returns true, the context ends, or
// the watched process dies.
func Poll(ctx context.Context, interval time.Duration, p *Process, fn func() (bool, error)) error {
	var last error
	for {
		ok, err := fn()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if p != nil {
			if dead, _ := p.Exited(); dead {
				return p.diedErr()
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// containsSecret reports whether any of the secrets occurs in text. Empty
// secrets never match.
func containsSecret(text string, secrets ...string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			return true
		}
	}
	return false
}

var errNotFound = errors.New("not found")
