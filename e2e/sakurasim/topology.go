package sakurasim

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// Topology is the starting state of a simulated zone. It is read from YAML
// (or JSON) with LoadTopology; field names are the JSON tags below.
type Topology struct {
	// Zone is the main zone: routers, switches and servers live there
	// unless they name another zone; an appliance lives in its switch's.
	Zone string `json:"zone"`
	// Zones are further zones the simulator serves, for clusters that span
	// zones. Routers, switches, servers and appliances may live in them.
	Zones    []string     `json:"zones,omitempty"`
	Routers  []RouterSpec `json:"routers,omitempty"`
	Switches []SwitchSpec `json:"switches,omitempty"`
	// Bridges join switches of different zones into one layer-2 segment;
	// a switch names its bridge (SwitchSpec.Bridge).
	Bridges       []BridgeSpec       `json:"bridges,omitempty"`
	Servers       []ServerSpec       `json:"servers,omitempty"`
	LoadBalancers []LoadBalancerSpec `json:"loadBalancers,omitempty"`
	VPCRouters    []VPCRouterSpec    `json:"vpcRouters,omitempty"`
}

// RouterSpec is a router+switch: a block of global addresses behind a router.
type RouterSpec struct {
	Name string `json:"name"`
	// Zone of the router and its switch: the topology's zone (default) or
	// one of its zones.
	Zone          string   `json:"zone,omitempty"`
	Tags          []string `json:"tags,omitempty"`
	BandWidthMbps int      `json:"bandWidthMbps,omitempty"` // default 100
	Switch        struct {
		Name    string   `json:"name"`
		Tags    []string `json:"tags,omitempty"`
		Network string   `json:"network"` // network address, e.g. 203.0.113.16
		MaskLen int      `json:"maskLen"` // e.g. 28
		// Bridge names the bridge the router's switch is connected to:
		// SAKURA connects a router+switch to a bridge like any switch
		// (saklient's Swytch.connect_to_bridge covers both).
		Bridge string `json:"bridge,omitempty"`
	} `json:"switch"`
}

// SwitchSpec is a plain (user) switch with the subnet the user runs on it.
type SwitchSpec struct {
	Name         string   `json:"name"`
	Tags         []string `json:"tags,omitempty"`
	Network      string   `json:"network"`
	MaskLen      int      `json:"maskLen"`
	DefaultRoute string   `json:"defaultRoute,omitempty"` // optional gateway on the segment
	// Zone of the switch: the topology's zone (default) or one of its zones.
	// Switches are zonal: only servers of the same zone have NICs on it.
	Zone string `json:"zone,omitempty"`
	// Bridge is the name of the bridge the switch is connected to, if any.
	// A bridge takes at most one switch per zone.
	Bridge string `json:"bridge,omitempty"`
}

// BridgeSpec is a bridge: a global resource that joins at most one switch
// of each zone into one layer-2 segment.
type BridgeSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// NICSpec is one server NIC: either on the shared segment (shared: true,
// ipAddress = global address) or on a switch by name (userIPAddress).
type NICSpec struct {
	Shared        bool   `json:"shared,omitempty"`
	IPAddress     string `json:"ipAddress,omitempty"`
	Switch        string `json:"switch,omitempty"`
	UserIPAddress string `json:"userIPAddress,omitempty"`
}

// ServerSpec is a server (a Kubernetes node candidate).
type ServerSpec struct {
	Name string `json:"name"`
	// Zone of the server: the topology's zone (default) or one of its zones.
	Zone     string    `json:"zone,omitempty"`
	CPU      int       `json:"cpu,omitempty"`      // default 2
	MemoryGB int       `json:"memoryGB,omitempty"` // default 4
	GPU      int       `json:"gpu,omitempty"`
	Status   string    `json:"status,omitempty"` // up (default) or down
	Tags     []string  `json:"tags,omitempty"`
	NICs     []NICSpec `json:"nics,omitempty"`
}

// VIPSpec is a virtual IP entry of a foreign load balancer.
type VIPSpec struct {
	Address string   `json:"address"`
	Port    int      `json:"port"`
	Servers []string `json:"servers,omitempty"` // real server IPs (ping check)
}

// LoadBalancerSpec is a load balancer that exists before the test starts
// (not owned by the cluster).
type LoadBalancerSpec struct {
	Name        string    `json:"name"`
	Switch      string    `json:"switch"`
	IPAddresses []string  `json:"ipAddresses"`
	VRID        int       `json:"vrid"`
	PlanID      int       `json:"planID,omitempty"` // default 1
	Tags        []string  `json:"tags,omitempty"`
	VIPs        []VIPSpec `json:"vips,omitempty"`
}

// VPCRouterSpec is a VPC router with an interface on a switch.
type VPCRouterSpec struct {
	Name             string   `json:"name"`
	Switch           string   `json:"switch"`
	InterfaceIndex   int      `json:"interfaceIndex,omitempty"` // default 1; 0 = public side on a router switch
	IPAddresses      []string `json:"ipAddresses"`
	VirtualIPAddress string   `json:"virtualIPAddress,omitempty"`
	VRID             int      `json:"vrid"`
	Tags             []string `json:"tags,omitempty"`
}

// LoadTopology reads a YAML or JSON topology file.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading topology: %w", err)
	}
	return ParseTopology(data)
}

// ParseTopology parses YAML or JSON topology data strictly (unknown fields are errors).
func ParseTopology(data []byte) (*Topology, error) {
	var t Topology
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("parsing topology: %w", err)
	}
	if t.Zone == "" {
		t.Zone = "is1a"
	}
	return &t, nil
}
