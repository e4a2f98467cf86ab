package chart

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestRelease runs what `make release` runs (hack/release.sh) into a
// temporary directory and checks what an operator downloads: the image
// tarball tagged VERSION, the packaged chart, the rendered manifest and
// SHA256SUMS that verify them. The manifest is then applied to a real API
// server and its controller scheduled onto a control-plane node.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release")
	}
	root := filepath.Join(chartDir(t), "..", "..")
	raw, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(raw))
	bin := os.Getenv("CCM_BINARY")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "fake-controller")
		if err := os.WriteFile(bin, []byte("#!fake\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "dist")
	cmd := exec.Command(filepath.Join(root, "hack", "release.sh"))
	cmd.Env = append(os.Environ(), "RELEASE_DIR="+out, "CCM_BINARY="+bin, "HELM="+helmBinary(t))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}

	// SHA256SUMS lists exactly the three artifacts, with their digests.
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q is not sha256sum's format", sc.Text())
		}
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("SHA256SUMS lists %s: %v", name, err)
		}
		if d := sha256.Sum256(data); hex.EncodeToString(d[:]) != sum {
			t.Errorf("%s: checksum does not match", name)
		}
		listed[name] = true
		st, _ := os.Stat(filepath.Join(out, name))
		t.Logf("%s: %d bytes", name, st.Size())
	}
	image := "sakura-cloud-controller-manager-" + version + ".oci.tar"
	chart := "sakura-cloud-controller-manager-" + strings.TrimPrefix(version, "v") + ".tgz"
	manifest := "sakura-cloud-controller-manager-" + version + ".yaml"
	for _, want := range []string{image, chart, manifest} {
		if !listed[want] {
			t.Errorf("SHA256SUMS does not list %s (lists %v)", want, listed)
		}
	}
	if sha256sum, err := exec.LookPath("sha256sum"); err == nil {
		check := exec.Command(sha256sum, "-c", "SHA256SUMS")
		check.Dir = out
		if b, err := check.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, b)
		}
	}

	// The image is tagged with VERSION, as the chart references it.
	if ref := ociRefName(t, filepath.Join(out, image)); ref != version {
		t.Errorf("image tagged %q, want %q", ref, version)
	}
	// The packaged chart carries VERSION as its appVersion.
	if app := packagedAppVersion(t, filepath.Join(out, chart)); app != version {
		t.Errorf("packaged chart appVersion %q, want %q", app, version)
	}

	// The manifest applies to a real API server without helm and schedules.
	data, err := os.ReadFile(filepath.Join(out, manifest))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "kind: Secret\n") {
		t.Error("the manifest carries a Secret: credentials must be the operator's own")
	}
	c := controlPlane(t)
	cps, _ := addNodes(t, c, "release", kubeadmStyle, 1)
	if o, err := kubectl(t, c, data, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply the release manifest: %v\n%s", err, o)
	}
	t.Cleanup(func() {
		_, _ = kubectl(t, c, data, "delete", "--wait=false", "--ignore-not-found", "-f", "-")
		zero := int64(0)
		_ = c.Client.CoreV1().Pods("kube-system").DeleteCollection(context.Background(),
			metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: instanceSelector("sakura-ccm")})
	})
	pods := placement(t, c, "sakura-ccm", 1)
	if pods[0].Spec.NodeName != cps[0] {
		t.Errorf("pod on %s, want %s", pods[0].Spec.NodeName, cps[0])
	}
	if img := pods[0].Spec.Containers[0].Image; img != "ghcr.io/sakura-ccm/sakura-cloud-controller-manager:"+version {
		t.Errorf("image %s, want the release's tag %s", img, version)
	}
}

func ociRefName(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no index.json", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil || len(idx.Manifests) != 1 {
			t.Fatalf("index.json: %v, %d manifests", err, len(idx.Manifests))
		}
		return idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"]
	}
}

func packagedAppVersion(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no Chart.yaml", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "sakura-cloud-controller-manager/Chart.yaml" {
			continue
		}
		raw, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var chart struct {
			AppVersion string `json:"appVersion"`
		}
		if err := yaml.Unmarshal(raw, &chart); err != nil {
			t.Fatal(err)
		}
		return chart.AppVersion
	}
}
