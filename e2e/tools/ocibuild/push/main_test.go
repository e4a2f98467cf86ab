package main

import (
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// buildImage runs ocibuild (the package one directory up) as `make image`
// does, on the real controller when CCM_BINARY is set.
func buildImage(t *testing.T, version string) string {
	t.Helper()
	bin := os.Getenv("CCM_BINARY")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "fake-binary")
		if err := os.WriteFile(bin, []byte("#!fake controller\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image.oci.tar")
	cmd := exec.Command("go", "run", ".", "--binary", bin, "--ca-bundle", ca, "--version", version, "--output", out)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ocibuild: %v\n%s", err, b)
	}
	return out
}

// TestPushToRegistry pushes a built image to an in-memory registry on
// 127.0.0.1 and pulls it back: same digest, same tag, the config intact.
func TestPushToRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	image := buildImage(t, "v9.8.7")
	ref := host + "/team/sakura-cloud-controller-manager:v9.8.7"
	digest, err := push(image, ref, false, authn.DefaultKeychain)
	if err != nil {
		t.Fatalf("push: %v", err)
	}

	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(tag)
	if err != nil {
		t.Fatalf("pulling back %s: %v", ref, err)
	}
	gotDigest, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if gotDigest != digest {
		t.Errorf("registry holds %s, pushed %s", gotDigest, digest)
	}
	cfg, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || cfg.Config.Labels["org.opencontainers.image.version"] != "v9.8.7" {
		t.Errorf("pulled config: user %q, labels %v", cfg.Config.User, cfg.Config.Labels)
	}
	layers, err := got.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("pulled image has %d layers (%v), want 2", len(layers), err)
	}
	// Pushing the same image again is a no-op that gives the same digest.
	again, err := push(image, ref, false, authn.DefaultKeychain)
	if err != nil || again != digest {
		t.Errorf("second push: %s, %v", again, err)
	}
}

// TestPushCommand runs the command line as `make push` does and checks it
// reports the digest and refuses what it cannot push.
func TestPushCommand(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	image := buildImage(t, "v1.2.3")

	run := func(args ...string) (string, error) {
		cmd := exec.Command("go", append([]string{"run", "."}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := run("--image", image, "--ref", host+"/ccm:v1.2.3")
	if err != nil || !strings.Contains(out, "pushed "+host+"/ccm:v1.2.3@sha256:") {
		t.Fatalf("push: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"--image", image}, // no ref
		{"--image", image, "--ref", "Not A Reference"},                                   // bad ref
		{"--image", filepath.Join(t.TempDir(), "missing.tar"), "--ref", host + "/ccm:x"}, // no image
	} {
		if out, err := run(bad...); err == nil {
			t.Errorf("push %v succeeded:\n%s", bad, out)
		}
	}
}
