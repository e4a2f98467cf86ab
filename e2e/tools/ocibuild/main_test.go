package main

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestImage builds an image from a binary (the real controller when
// CCM_BINARY is set, as in `make test`) and checks what a cluster relies on:
// it runs as non-root, starts the controller, carries CA certificates, and
// has no shell or other binaries.
func TestImage(t *testing.T) {
	bin := os.Getenv("CCM_BINARY")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "fake-binary")
		if err := os.WriteFile(bin, []byte("#!fake\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := build(options{binary: bin, caBundle: ca, output: out, version: "v-test", arch: "amd64"}); err != nil {
		t.Fatalf("build: %v", err)
	}

	dir := t.TempDir()
	if err := exec.Command("tar", "-xf", out, "-C", dir).Run(); err != nil {
		t.Fatalf("the output is not a tarball: %v", err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("want one image in the layout, got %v (%v)", m, err)
	}
	if got := m.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != "v-test" {
		t.Errorf("ref name = %q", got)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("User = %q, want the non-root 65532:65532", cfg.Config.User)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != BinaryPath {
		t.Errorf("Entrypoint = %v", cfg.Config.Entrypoint)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform = %s/%s", cfg.OS, cfg.Architecture)
	}

	files := map[string]int64{}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files["/"+strings.TrimSuffix(h.Name, "/")] = h.Mode
			if h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s owned by %d:%d, want root (read-only for the non-root user)", h.Name, h.Uid, h.Gid)
			}
		}
		rc.Close()
	}
	for _, want := range []string{BinaryPath, "/etc/passwd", "/etc/group", "/etc/ssl/certs/ca-certificates.crt"} {
		if _, ok := files[want]; !ok {
			t.Errorf("image lacks %s (has %v)", want, files)
		}
	}
	if files[BinaryPath]&0o111 == 0 {
		t.Errorf("%s is not executable", BinaryPath)
	}
	for f := range files {
		if strings.HasPrefix(f, "/bin") || strings.HasPrefix(f, "/usr") || strings.HasPrefix(f, "/sbin") {
			t.Errorf("unexpected %s: the image should hold nothing but the controller", f)
		}
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image tarball: %d bytes, %d layers, %d files", st.Size(), len(layers), len(files))
}
