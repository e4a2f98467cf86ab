package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// findRepoRoot returns root if set, else the nearest directory at or above
// the working directory that holds hack/build-tools.sh.
func findRepoRoot(root string) (string, error) {
	if root != "" {
		return filepath.Abs(root)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "build-tools.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root (with hack/build-tools.sh) not found above the working directory")
		}
		dir = parent
	}
}

// resolveTools finds the directory of control-plane binaries: the option,
// else $SAKURA_TOOLS_BIN, else whatever hack/build-tools.sh prints (it builds
// missing tools once and caches them).
func resolveTools(ctx context.Context, root, dir string, logf func(string, ...any)) (string, error) {
	if dir == "" {
		dir = os.Getenv("SAKURA_TOOLS_BIN")
	}
	if dir == "" {
		if logf != nil {
			logf("locating control-plane tools with hack/build-tools.sh (the first run builds them: several minutes)")
		}
		cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "build-tools.sh"))
		cmd.Dir = root
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("hack/build-tools.sh: %w: %s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		dir = strings.TrimSpace(lines[len(lines)-1])
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("tool %s missing in %s (run hack/build-tools.sh): %w", name, dir, err)
		}
	}
	return dir, nil
}

// goBuild builds pkg in module dir moduleDir into out.
func goBuild(ctx context.Context, moduleDir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = moduleDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// CCMBinary returns the controller binary: the option, $CCM_BINARY, or a
// fresh `go build` of ./cmd/sakura-cloud-controller-manager (once per Cluster).
func (c *Cluster) CCMBinary(ctx context.Context) (string, error) {
	return c.binary(ctx, &c.ccmBinary, c.opts.CCMBinary, "CCM_BINARY", "sakura-cloud-controller-manager",
		c.RepoRoot, "./cmd/sakura-cloud-controller-manager")
}

// SimulatorBinary returns the simulator binary: the option,
// $SAKURASIM_BINARY, or a `go build` of e2e/cmd/sakurasim (once per Cluster).
func (c *Cluster) SimulatorBinary(ctx context.Context) (string, error) {
	return c.binary(ctx, &c.simBinary, c.opts.SimulatorBinary, "SAKURASIM_BINARY", "sakurasim",
		filepath.Join(c.RepoRoot, "e2e"), "./cmd/sakurasim")
}

// binary resolves one binary once: the option, then the environment
// variable, else `go build` of pkg in moduleDir into the cluster's bin/.
func (c *Cluster) binary(ctx context.Context, cached *string, option, envVar, name, moduleDir, pkg string) (string, error) {
	c.buildMu.Lock()
	defer c.buildMu.Unlock()
	if *cached != "" {
		return *cached, nil
	}
	bin := option
	if bin == "" {
		bin = os.Getenv(envVar)
	}
	if bin == "" {
		bin = filepath.Join(c.Dir, "bin", name)
		c.logf("building %s", name)
		if err := goBuild(ctx, moduleDir, pkg, bin); err != nil {
			return "", err
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s binary: %w", name, err)
	}
	*cached = bin
	return bin, nil
}
