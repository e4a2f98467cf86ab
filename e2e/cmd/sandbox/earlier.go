package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sacloud/api-client-go"
	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/helper/api"
	"github.com/sacloud/iaas-api-go/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// credentialsFile holds what `sandbox earlier` needs to call the simulator.
const credentialsFile = "simulator-credentials.json"

type simCredentials struct {
	URL       string `json:"url"`
	Token     string `json:"token"`
	Secret    string `json:"secret"`
	ClusterID string `json:"clusterID"`
}

// earlier makes, through the simulator's API, the appliance the earlier
// SAKURA controller (sacloud/sakura-cloud-controller-manager 0.4.3) made for
// a Service: named "a" + the Service's UID without dashes (at most 32
// characters, cloudprovider.DefaultLoadBalancerName), tagged "@k8s",
// "@k8s.ClusterID=<clusterID>" and "@k8s.Service=<the name's first 18
// bytes>", with one VIP entry per Service port. It is how the migration walk
// in docs/migration.md is tried without the earlier controller.
func earlier(args []string) error {
	fs := flag.NewFlagSet("earlier", flag.ExitOnError)
	dir := fs.String("dir", ".sandbox", "sandbox directory")
	service := fs.String("service", "", "the Service (namespace/name) the appliance is for")
	vip := fs.String("vip", "", "its VIP, in the router+switch block")
	ip := fs.String("ip", "", "the appliance's own address, in the block")
	clusterID := fs.String("cluster-id", "", "the earlier controller's clusterID (default: the sandbox controller's)")
	_ = fs.Parse(args)
	ns, name, ok := strings.Cut(*service, "/")
	if !ok || *vip == "" || *ip == "" {
		return errors.New("usage: sandbox earlier --dir DIR --service NAMESPACE/NAME --vip IP --ip IP")
	}
	b, err := os.ReadFile(filepath.Join(*dir, credentialsFile))
	if err != nil {
		return fmt.Errorf("no sandbox running (%w)", err)
	}
	var creds simCredentials
	if err := json.Unmarshal(b, &creds); err != nil {
		return err
	}
	if *clusterID == "" {
		*clusterID = creds.ClusterID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(*dir, "kubeconfig"))
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	svc, err := kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}

	caller := api.NewCallerWithOptions(&api.CallerOptions{
		Options:    &client.Options{AccessToken: creds.Token, AccessTokenSecret: creds.Secret, RetryMax: 3},
		APIRootURL: creds.URL, DefaultZone: "is1a",
	})
	zone, sw, err := routerSwitch(ctx, caller)
	if err != nil {
		return err
	}
	subnet := sw.Subnets[0]
	var entries iaas.LoadBalancerVirtualIPAddresses
	for _, p := range svc.Spec.Ports {
		entries = append(entries, &iaas.LoadBalancerVirtualIPAddress{VirtualIPAddress: *vip, Port: types.StringNumber(p.Port), DelayLoop: 10})
	}
	short := svc.Name
	if len(short) > 18 {
		short = short[:18]
	}
	lbName := "a" + strings.ReplaceAll(string(svc.UID), "-", "")
	if len(lbName) > 32 {
		lbName = lbName[:32]
	}
	tags := types.Tags{"@k8s", "@k8s.Service=" + short}
	if *clusterID != "" {
		tags = append(tags, "@k8s.ClusterID="+*clusterID)
	}
	lb, err := iaas.NewLoadBalancerOp(caller).Create(ctx, zone, &iaas.LoadBalancerCreateRequest{
		SwitchID: sw.ID, PlanID: types.LoadBalancerPlans.Standard, VRID: 200,
		IPAddresses: []string{*ip}, NetworkMaskLen: subnet.NetworkMaskLen, DefaultRoute: subnet.DefaultRoute,
		Name: lbName, Tags: tags, VirtualIPAddresses: entries,
	})
	if err != nil {
		return fmt.Errorf("creating the appliance: %w", err)
	}
	fmt.Printf("made load balancer %s (%s) on switch %s with VIP %s, tags %v, as the earlier controller would have for %s/%s\n",
		lb.Name, lb.ID, sw.ID, *vip, []string(tags), ns, name)
	return nil
}

// routerSwitch is the simulator's router+switch (the block the sandbox's
// Services take their addresses from).
func routerSwitch(ctx context.Context, caller iaas.APICaller) (string, *iaas.Switch, error) {
	const zone = "is1a"
	r, err := iaas.NewSwitchOp(caller).Find(ctx, zone, &iaas.FindCondition{})
	if err != nil {
		return "", nil, err
	}
	for _, sw := range r.Switches {
		if len(sw.Subnets) > 0 {
			return zone, sw, nil
		}
	}
	return "", nil, errors.New("the simulator has no router+switch")
}
