package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SimulatorOptions configures one simulator process.
type SimulatorOptions struct {
	// Topology is a topology YAML file. Empty: the simulator's sample,
	// e2e/sakurasim/testdata/topology.yaml.
	Topology string
	// BootDelay is how long new appliances take to come up. Empty: 3s.
	BootDelay time.Duration
	// Name distinguishes log files when a cluster runs several simulators.
	Name string
	// StrictConflicts makes the simulator refuse (409) an appliance IP or
	// VIP already in use, as its own default does. Left false, the
	// simulator runs with --accept-conflicts: it accepts and stores those
	// writes, since SAKURA's API is not known to refuse them, so a
	// controller that relies on the refusal fails visibly
	// (docs/simulator.md).
	StrictConflicts bool
}

// Simulator is a running e2e/cmd/sakurasim process.
type Simulator struct {
	// URL is the API root the CCM's apiRootURL points at.
	URL string
	// Token and Secret are the credentials it accepts. Secret must never
	// appear in any log.
	Token, Secret string
	Process       *Process
	http          *http.Client
}

// AdminURL is the base of the simulator's admin API.
func (s *Simulator) AdminURL() string { return s.URL + "/_admin" }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartSimulator builds (once) and starts a simulator with fresh random
// credentials and waits for it to publish its URL.
func (c *Cluster) StartSimulator(ctx context.Context, opts SimulatorOptions) (*Simulator, error) {
	bin, err := c.SimulatorBinary(ctx)
	if err != nil {
		return nil, err
	}
	if opts.Topology == "" {
		opts.Topology = filepath.Join(c.RepoRoot, "e2e", "sakurasim", "testdata", "topology.yaml")
	}
	if opts.BootDelay == 0 {
		opts.BootDelay = 3 * time.Second
	}
	if opts.Name == "" {
		opts.Name = "sakurasim-" + randomHex(3)
	}
	s := &Simulator{
		Token:  "e2e-token-" + randomHex(4),
		Secret: "e2e-secret-" + randomHex(16),
		http:   &http.Client{Timeout: 10 * time.Second},
	}
	urlFile := filepath.Join(c.Dir, opts.Name+".url")
	_ = os.Remove(urlFile)
	c.logf("starting the SAKURA API simulator (%s)", opts.Name)
	p, err := startProcess(opts.Name, bin, []string{
		"--listen", "127.0.0.1:0",
		"--topology", opts.Topology,
		"--token", s.Token,
		"--secret", s.Secret,
		"--boot-delay", opts.BootDelay.String(),
		"--url-file", urlFile,
		fmt.Sprintf("--accept-conflicts=%v", !opts.StrictConflicts),
	}, filepath.Join(c.Dir, opts.Name+".log"), nil)
	if err != nil {
		return nil, err
	}
	s.Process = p
	c.mu.Lock()
	c.sims = append(c.sims, s)
	c.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = Poll(wctx, 100*time.Millisecond, p, func() (bool, error) {
		b, err := os.ReadFile(urlFile)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return false, nil
		}
		s.URL = strings.TrimRight(strings.TrimSpace(string(b)), "/")
		return true, nil
	})
	if err != nil {
		p.Stop(time.Second)
		return nil, fmt.Errorf("simulator did not publish its URL: %w", err)
	}
	return s, nil
}

// Stop ends the simulator process.
func (s *Simulator) Stop() { s.Process.Stop(2 * time.Second) }

// Admin sends one admin request (path relative to /_admin, e.g. "/state")
// and decodes a JSON answer into out (if non-nil).
func (s *Simulator) Admin(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.AdminURL()+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("simulator admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("simulator admin %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("simulator admin %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// RawState returns GET /_admin/state as raw JSON.
func (s *Simulator) RawState(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := s.Admin(ctx, http.MethodGet, "/state", nil, &raw)
	return raw, err
}

// The admin operations below follow the simulator's admin API
// (docs/simulator.md); they are here so tests and the sandbox share them.
// A server reference is its ID or its unique name.

// AddServer creates a server from a topology-style spec (the JSON of
// sakurasim.ServerSpec) and returns its ID.
func (s *Simulator) AddServer(ctx context.Context, spec any) (string, error) {
	var out struct {
		ID json.Number `json:"ID"`
	}
	if err := s.Admin(ctx, http.MethodPost, "/servers", spec, &out); err != nil {
		return "", err
	}
	return out.ID.String(), nil
}

// DeleteServer removes a server.
func (s *Simulator) DeleteServer(ctx context.Context, ref string) error {
	return s.Admin(ctx, http.MethodDelete, "/servers/"+ref, nil, nil)
}

// PowerOff stops a server.
func (s *Simulator) PowerOff(ctx context.Context, ref string) error {
	return s.Admin(ctx, http.MethodPost, "/servers/"+ref+"/power", map[string]bool{"on": false}, nil)
}

// PowerOn starts a server.
func (s *Simulator) PowerOn(ctx context.Context, ref string) error {
	return s.Admin(ctx, http.MethodPost, "/servers/"+ref+"/power", map[string]bool{"on": true}, nil)
}

// FaultRule is one fault-injection rule (see sakurasim.FaultRule).
type FaultRule struct {
	Op      string  `json:"op,omitempty"`     // "LoadBalancer.Create", "LoadBalancer.*" or "*"
	Zone    string  `json:"zone,omitempty"`   // only requests for this zone; empty: every zone
	Status  int     `json:"status,omitempty"` // e.g. 429, 503
	Rate    float64 `json:"rate,omitempty"`   // 0..1; 0 means always
	Latency string  `json:"latency,omitempty"`
	Drop    bool    `json:"drop,omitempty"`
	Times   int     `json:"times,omitempty"`
	Fired   int     `json:"fired,omitempty"` // read only: how often it fired
	After   bool    `json:"after,omitempty"` // carry the operation out, then fault the answer
}

// Faults returns the current fault rules with their fired counts.
func (s *Simulator) Faults(ctx context.Context) ([]FaultRule, error) {
	var out struct {
		Rules []FaultRule `json:"rules"`
	}
	err := s.Admin(ctx, http.MethodGet, "/faults", nil, &out)
	return out.Rules, err
}

// SetFaults replaces the fault rules. The first matching rule decides.
func (s *Simulator) SetFaults(ctx context.Context, rules []FaultRule) error {
	return s.Admin(ctx, http.MethodPost, "/faults", map[string]any{"rules": rules}, nil)
}

// ClearFaults removes every fault rule.
func (s *Simulator) ClearFaults(ctx context.Context) error {
	return s.Admin(ctx, http.MethodDelete, "/faults", nil, nil)
}

// Requests returns request counts per operation (e.g. "LoadBalancer.Create"),
// all answers included.
func (s *Simulator) Requests(ctx context.Context) (map[string]int, error) {
	var raw struct {
		Operations map[string]struct {
			Total int `json:"total"`
		} `json:"operations"`
	}
	if err := s.Admin(ctx, http.MethodGet, "/requests", nil, &raw); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for op, v := range raw.Operations {
		out[op] = v.Total
	}
	return out, nil
}

// ServersUp maps each server name in the simulator to whether it is running.
func (s *Simulator) ServersUp(ctx context.Context) (map[string]bool, error) {
	var st struct {
		Servers []struct {
			Name     string `json:"Name"`
			Instance struct {
				Status string `json:"Status"`
			} `json:"Instance"`
		} `json:"servers"`
	}
	if err := s.Admin(ctx, http.MethodGet, "/state", nil, &st); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, sv := range st.Servers {
		out[sv.Name] = out[sv.Name] || sv.Instance.Status == "up"
	}
	return out, nil
}

// SetRealServerHealth forces every real-server entry with address ip DOWN in
// the load balancer Status API (up=false), or clears that override (up=true).
func (s *Simulator) SetRealServerHealth(ctx context.Context, ip string, up bool) error {
	return s.Admin(ctx, http.MethodPost, "/realserver-health", map[string]any{"ip": ip, "up": up}, nil)
}

// AddFaults puts rules in front of the current ones (they take precedence).
func (s *Simulator) AddFaults(ctx context.Context, rules ...FaultRule) error {
	return s.Admin(ctx, http.MethodPost, "/faults/add", map[string]any{"rules": rules}, nil)
}

// FailNextConfig makes the next LoadBalancer.Config answer status (0: 500)
// without applying anything: the saved settings stay changed, the applied
// ones do not.
func (s *Simulator) FailNextConfig(ctx context.Context, status int) error {
	var body any
	if status != 0 {
		body = map[string]int{"status": status}
	}
	return s.Admin(ctx, http.MethodPost, "/faults/fail-next-config", body, nil)
}

// SetDelays sets the boot delay and the read-not-found window for later
// transitions; a negative duration leaves that setting as it is.
func (s *Simulator) SetDelays(ctx context.Context, bootDelay, readNotFoundWindow time.Duration) error {
	body := map[string]string{}
	if bootDelay >= 0 {
		body["bootDelay"] = bootDelay.String()
	}
	if readNotFoundWindow >= 0 {
		body["readNotFoundWindow"] = readNotFoundWindow.String()
	}
	return s.Admin(ctx, http.MethodPost, "/boot-delay", body, nil)
}

// Conflict is one conflicting write the simulator accepted (an address
// already in use, or a duplicate tag; see sakurasim.Conflict).
type Conflict struct {
	Op        string      `json:"op"`
	Appliance json.Number `json:"appliance"`
	Field     string      `json:"field"`
	Value     string      `json:"value"`
	Holder    string      `json:"holder"`
}

// Conflicts says whether the simulator accepts conflicting writes and lists
// those it accepted.
func (s *Simulator) Conflicts(ctx context.Context) (bool, []Conflict, error) {
	var out struct {
		Accept   bool       `json:"accept"`
		Accepted []Conflict `json:"accepted"`
	}
	err := s.Admin(ctx, http.MethodGet, "/conflicts", nil, &out)
	return out.Accept, out.Accepted, err
}

// SetAcceptConflicts turns the acceptance of conflicting writes on or off.
func (s *Simulator) SetAcceptConflicts(ctx context.Context, accept bool) error {
	return s.Admin(ctx, http.MethodPost, "/conflicts", map[string]bool{"accept": accept}, nil)
}

// ResetRequests clears the request counts.
func (s *Simulator) ResetRequests(ctx context.Context) error {
	return s.Admin(ctx, http.MethodPost, "/requests/reset", nil, nil)
}

// LBRealServer is one real server of a VIP entry (the simulator's naked form).
type LBRealServer struct {
	IPAddress string      `json:"IPAddress"`
	Port      json.Number `json:"Port"`
	Enabled   string      `json:"Enabled"`
}

// LBSetting is one VIP entry (VIP + port) with its real servers.
type LBSetting struct {
	VirtualIPAddress string         `json:"VirtualIPAddress"`
	Port             json.Number    `json:"Port"`
	Servers          []LBRealServer `json:"Servers"`
}

// LoadBalancerConfig is GET /_admin/load-balancers/{id}: one load balancer's
// saved settings (what Read shows) and applied ones (what the appliance runs
// and Status follows), and whether a saved change awaits a Config.
type LoadBalancerConfig struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Status      string      `json:"status"` // up, down or "" (being created)
	Saved       []LBSetting `json:"saved"`
	SavedHash   string      `json:"savedHash"`
	Applied     []LBSetting `json:"applied"`
	AppliedHash string      `json:"appliedHash"`
	Pending     bool        `json:"pending"`
}

// LoadBalancer returns the saved and applied settings of load balancer id.
func (s *Simulator) LoadBalancer(ctx context.Context, id string) (*LoadBalancerConfig, error) {
	var out LoadBalancerConfig
	if err := s.Admin(ctx, http.MethodGet, "/load-balancers/"+id, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StateLoadBalancer is a load balancer as GET /_admin/state lists it: every
// one, including those the API hides in the read-not-found window.
type StateLoadBalancer struct {
	ID           json.Number `json:"ID"`
	Name         string      `json:"Name"`
	Tags         []string    `json:"Tags"`
	Availability string      `json:"Availability"`
	Instance     struct {
		Status string `json:"Status"`
	} `json:"Instance"`
}

// LoadBalancers lists every load balancer in the simulator.
func (s *Simulator) LoadBalancers(ctx context.Context) ([]StateLoadBalancer, error) {
	var st struct {
		LoadBalancers []StateLoadBalancer `json:"loadBalancers"`
	}
	if err := s.Admin(ctx, http.MethodGet, "/state", nil, &st); err != nil {
		return nil, err
	}
	return st.LoadBalancers, nil
}
