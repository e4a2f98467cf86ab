package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The controller runs in every e2e test as the helm chart's ServiceAccount,
// bound by the chart's own RBAC templates: the whole suite then proves those
// rules are enough, and the check for "forbidden" in the controller's log
// proves nothing was denied.
const (
	ChartRelease        = "ccm"
	ChartNamespace      = "kube-system"
	ChartServiceAccount = "ccm-sakura-cloud-controller-manager"
	// ChartClusterRole is the ClusterRole rendered from templates/rbac.yaml.
	ChartClusterRole = "ccm-sakura-cloud-controller-manager"
)

// ChartDir is the helm chart in the checkout.
func (c *Cluster) ChartDir() string {
	return filepath.Join(c.RepoRoot, "charts", "sakura-cloud-controller-manager")
}

// RenderChart runs the pinned helm's `template` for the chart with args.
func (c *Cluster) RenderChart(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.ToolsBin, "helm"),
		append([]string{"template", ChartRelease, c.ChartDir(), "--namespace", ChartNamespace}, args...)...)
	home := filepath.Join(c.Dir, "helm-home")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template: %w: %s", err, stderr.String())
	}
	return out, nil
}

// installChartRBAC applies the chart's ServiceAccount and RBAC and writes
// CCMKubeconfig with a token of that ServiceAccount.
func (c *Cluster) installChartRBAC(ctx context.Context) error {
	// Secrets in every namespace: each test has its own namespace, and the
	// Enhanced Load Balancer tests name TLS Secrets there (the chart test
	// TestTLSSecretRBAC checks the per-namespace Roles).
	manifests, err := c.RenderChart(ctx, "--set", "existingSecret=unused", "--set", "rbac.secretNamespaces={*}",
		"--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml")
	if err != nil {
		return err
	}
	apply := c.Kubectl(ctx, "apply", "-f", "-")
	apply.Stdin = bytes.NewReader(manifests)
	if out, err := apply.CombinedOutput(); err != nil {
		return fmt.Errorf("applying the chart's RBAC: %w: %s", err, out)
	}
	ttl := int64(24 * 60 * 60)
	tok, err := c.Client.CoreV1().ServiceAccounts(ChartNamespace).CreateToken(ctx, ChartServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("minting a token for %s/%s: %w", ChartNamespace, ChartServiceAccount, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["sakura-e2e"] = &clientcmdapi.Cluster{Server: c.APIServerURL, CertificateAuthority: c.pki.CAFile}
	cfg.AuthInfos["ccm"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["sakura-e2e"] = &clientcmdapi.Context{Cluster: "sakura-e2e", AuthInfo: "ccm"}
	cfg.CurrentContext = "sakura-e2e"
	c.CCMKubeconfig = filepath.Join(c.Dir, "ccm.kubeconfig")
	return clientcmd.WriteToFile(*cfg, c.CCMKubeconfig)
}
