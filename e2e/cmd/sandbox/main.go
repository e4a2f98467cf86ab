// Command sandbox runs a local cluster for trying the controller by hand: a
// real kube-apiserver (with etcd and kube-controller-manager), the SAKURA API
// simulator, Nodes for the simulator's servers and one controller replica. It
// is what hack/sandbox.sh starts in the background.
//
//	sandbox up   --dir .sandbox [--topology FILE]   run until SIGTERM/SIGINT
//	sandbox show --dir .sandbox                      print the simulator's load balancers
//	sandbox earlier --dir .sandbox --service NS/NAME --vip IP --ip IP
//	                                                 make the appliance the earlier
//	                                                 controller would have made for a Service
//
// `up` writes into --dir: kubeconfig, env (SIMULATOR_URL, SIMULATOR_ADMIN_URL,
// KUBECONFIG, KUBECTL, CCM_LOG, ...), pid, and `ready` once everything runs;
// logs of every process are under --dir/run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sandbox up|show|earlier --dir DIR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "show":
		err = show(os.Args[2:])
	case "earlier":
		err = earlier(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want up, show or earlier)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		os.Exit(1)
	}
}

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", ".sandbox", "sandbox directory")
	topology := fs.String("topology", "", "simulator topology (default: e2e/testdata/topology.yaml)")
	clusterID := fs.String("cluster-id", "sandbox", "clusterID for the controller")
	serviceController := fs.String("service-controller", "upstream", "loop that serves Services without a class: upstream or own (cloud-config loadBalancer.serviceController)")
	_ = fs.Parse(args)

	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(abs, "ready"))
	if err := os.WriteFile(filepath.Join(abs, "pid"), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
		return err
	}
	logf := func(f string, a ...any) {
		fmt.Printf("%s sandbox: "+f+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(abs, "run"), ControllerManager: true, Logf: logf})
	if err != nil {
		return err
	}
	defer c.StopKeepLogs()

	topo := *topology
	if topo == "" {
		topo = filepath.Join(c.RepoRoot, "e2e", "testdata", "topology.yaml")
	}
	sim, err := c.StartSimulator(ctx, cluster.SimulatorOptions{Topology: topo, Name: "sakurasim"})
	if err != nil {
		return err
	}
	var state struct {
		Servers []struct {
			Name string `json:"Name"`
		} `json:"servers"`
	}
	if err := sim.Admin(ctx, http.MethodGet, "/state", nil, &state); err != nil {
		return err
	}
	var nodes []string
	for _, s := range state.Servers {
		if _, err := c.RegisterNode(ctx, cluster.NodeSpec{Name: s.Name}); err != nil {
			return err
		}
		nodes = append(nodes, s.Name)
		logf("registered Node %s (as kubelet --cloud-provider=external would)", s.Name)
	}
	m, err := c.StartCCM(ctx, cluster.CCMOptions{Simulator: sim, ClusterID: *clusterID, Name: "sakura-cloud-controller-manager", LeaseName: "cloud-controller-manager",
		Extra: map[string]any{"loadBalancer": map[string]any{"serviceController": *serviceController}}})
	if err != nil {
		return err
	}
	go c.EmulateKubelets(ctx, sim, 2*time.Second)
	// Pods of every namespace get scheduled and turn ready, so Deployments
	// and EndpointSlices (externalTrafficPolicy: Local) work as in a cluster.
	go c.EmulatePods(ctx, metav1.NamespaceAll, nodes, time.Second)

	kubeconfig := filepath.Join(abs, "kubeconfig")
	b, err := os.ReadFile(c.AdminKubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		return err
	}
	// The simulator's made-up credentials, for `sandbox earlier`; only the
	// owner may read them, like the kubeconfig.
	creds, err := json.Marshal(simCredentials{URL: sim.URL, Token: sim.Token, Secret: sim.Secret, ClusterID: *clusterID})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(abs, credentialsFile), creds, 0o600); err != nil {
		return err
	}
	env := fmt.Sprintf(`# Written by hack/sandbox.sh; source it: . %[1]s/env
export SIMULATOR_URL=%[2]s
export SIMULATOR_ADMIN_URL=%[3]s
export KUBECONFIG=%[4]s
export KUBECTL=%[5]s
export CCM_LOG=%[6]s
export SIMULATOR_LOG=%[7]s
export SANDBOX_LOGS=%[8]s
`, abs, sim.URL, sim.AdminURL(), kubeconfig, filepath.Join(c.ToolsBin, "kubectl"), m.LogFile, sim.Process.LogFile, c.Dir)
	if err := os.WriteFile(filepath.Join(abs, "env"), []byte(env), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(abs, "ready"), []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	logf("ready: kube-apiserver %s, simulator %s, controller pid %d", c.APIServerURL, sim.URL, m.Process.Pid())

	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	reported := false
	for {
		select {
		case <-ctx.Done():
			logf("stopping")
			return nil
		case <-tick.C:
			if crashed, why := m.Crashed(); crashed && !reported {
				logf("the controller stopped: %s", why)
				reported = true
			}
		}
	}
}

// show prints the simulator's load balancers: what `kubectl get svc` cannot.
func show(args []string) error {
	fs := flag.NewFlagSet("show", flag.ExitOnError)
	dir := fs.String("dir", ".sandbox", "sandbox directory")
	adminURL := fs.String("admin-url", "", "simulator admin URL (default: from DIR/env)")
	_ = fs.Parse(args)
	if *adminURL == "" {
		b, err := os.ReadFile(filepath.Join(*dir, "env"))
		if err != nil {
			return fmt.Errorf("no sandbox running (%w)", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "export SIMULATOR_ADMIN_URL="); ok {
				*adminURL = strings.TrimSpace(v)
			}
		}
	}
	resp, err := http.Get(*adminURL + "/state")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/state: %s", *adminURL, resp.Status)
	}
	return printState(os.Stdout, body)
}

// stateLB is the part of the simulator state's load balancers printed here
// (SAKURA's wire format, as iaas-api-go's naked.LoadBalancer).
type stateLB struct {
	ID           json.Number `json:"ID"`
	Name         string      `json:"Name"`
	Tags         []string    `json:"Tags"`
	Availability string      `json:"Availability"`
	Instance     struct {
		Status string `json:"Status"`
	} `json:"Instance"`
	Remark struct {
		Servers []struct {
			IPAddress string `json:"IPAddress"`
		} `json:"Servers"`
	} `json:"Remark"`
	Settings struct {
		LoadBalancer []struct {
			VirtualIPAddress string `json:"VirtualIPAddress"`
			Port             any    `json:"Port"`
			Servers          []struct {
				IPAddress string `json:"IPAddress"`
				Enabled   string `json:"Enabled"`
			} `json:"Servers"`
		} `json:"LoadBalancer"`
	} `json:"Settings"`
}

func printState(w io.Writer, body []byte) error {
	var st struct {
		Zone          string    `json:"zone"`
		LoadBalancers []stateLB `json:"loadBalancers"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decoding simulator state: %w", err)
	}
	sort.Slice(st.LoadBalancers, func(i, j int) bool { return st.LoadBalancers[i].Name < st.LoadBalancers[j].Name })
	fmt.Fprintf(w, "SAKURA Cloud (simulated zone %s): %d load balancer appliance(s)\n", st.Zone, len(st.LoadBalancers))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var tags []string
	fmt.Fprintln(tw, "NAME\tID\tSTATUS\tAPPLIANCE IPs\tVIP:PORT\tREAL SERVERS")
	for _, lb := range st.LoadBalancers {
		var ips []string
		for _, s := range lb.Remark.Servers {
			ips = append(ips, s.IPAddress)
		}
		status := lb.Instance.Status
		if status == "" {
			status = lb.Availability
		}
		first := true
		row := func(vip, servers string) {
			if first {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", lb.Name, lb.ID, status, strings.Join(ips, ","), vip, servers)
				first = false
				return
			}
			fmt.Fprintf(tw, "\t\t\t\t%s\t%s\n", vip, servers)
		}
		for _, v := range lb.Settings.LoadBalancer {
			var rs []string
			for _, s := range v.Servers {
				rs = append(rs, s.IPAddress)
			}
			row(fmt.Sprintf("%s:%v", v.VirtualIPAddress, v.Port), strings.Join(rs, ","))
		}
		if first {
			row("-", "-")
		}
		if len(lb.Tags) > 0 {
			tags = append(tags, fmt.Sprintf("  %s: %s", lb.Name, strings.Join(lb.Tags, " ")))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(tags) > 0 {
		fmt.Fprintf(w, "Tags (ownership):\n%s\n", strings.Join(tags, "\n"))
	}
	return nil
}
