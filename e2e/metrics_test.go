package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// TestMetricsScrape scrapes the controller's /metrics the way Prometheus
// would: over HTTPS on --secure-port, authenticated with a client
// certificate and authorized by the cluster (delegated authn/authz, which
// also exercises the chart's auth-delegator and authentication-reader
// bindings). The SAKURA API counters must show the calls the controller made.
func TestMetricsScrape(t *testing.T) {
	e := newEnv(t, envOptions{noCCM: true})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m, err := cp.StartCCM(e.ctx, cluster.CCMOptions{
		Simulator: e.sim, ClusterID: e.clusterID, Zone: zone, Name: "ccm-" + e.name, LeaseName: e.lease,
		Extra: map[string]any{"serverCacheTTLSec": 5},
		Args:  []string{"--secure-port=" + strconv.Itoa(port), "--bind-address=127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.ccms = append(e.ccms, m)
	e.ccm = m

	// Make the controller do some work: a Service to provision.
	e.createLBService("web")
	e.waitIngressIP("web")

	tlsCfg, err := rest.TLSConfigFor(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The controller serves a self-signed certificate for 127.0.0.1.
	tlsCfg.RootCAs, tlsCfg.InsecureSkipVerify = nil, true
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)

	var body string
	e.eventually(longWait, "the controller's /metrics shows SAKURA API calls", func() (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, nil // not serving yet
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return false, nil
		}
		body = string(b)
		return strings.Contains(body, `sakuracloud_ccm_api_requests_total{operation="LoadBalancer.Create",result="ok"}`), nil
	})
	for _, want := range []string{
		`sakuracloud_ccm_api_requests_total{operation="Server.Find",result="ok"}`,
		`sakuracloud_ccm_api_request_duration_seconds_bucket{operation="LoadBalancer.Create"`,
		`sakuracloud_ccm_block_addresses{state="free",switch=`,
		// The chart's SakuraCCMNoLeader alert (docs/alerts.md) relies on it.
		`leader_election_master_status{name="` + e.lease + `"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if n := metricValue(body, `sakuracloud_ccm_api_requests_total{operation="LoadBalancer.Create",result="ok"}`); n != 1 {
		t.Errorf("LoadBalancer.Create ok = %v, want exactly 1 for one Service", n)
	}

	// Without credentials the endpoint must not answer.
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone()}}
	anon.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	anon.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = nil
	if resp, err := anon.Get(url); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("/metrics answered an anonymous request")
		}
	}
}

var sampleLine = regexp.MustCompile(`^(\S+) (\S+)$`)

// metricValue returns the value of the sample whose name and labels are
// exactly series, or -1.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if m := sampleLine.FindStringSubmatch(line); m != nil && m[1] == series {
			v, err := strconv.ParseFloat(m[2], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}
