package sakurasim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
)

// statusWriter remembers the status code for request accounting.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// request is one parsed API call.
type request struct {
	ctx    context.Context // cancelled when the client goes away
	method string
	zone   string
	parts  []string // path after /{zone}/api/cloud/1.1/
	body   []byte
	find   *findCond
	op     string
}

func (s *Simulator) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_admin" || strings.HasPrefix(r.URL.Path, "/_admin/") {
		s.serveAdmin(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	req := &request{ctx: r.Context(), method: r.Method}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		s.writeErr(sw, badRequest("reading body failed"))
		return
	}
	req.body = body
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 5 || parts[1] != "api" || parts[2] != "cloud" || parts[3] != "1.1" {
		req.op = "Unknown"
		s.finish(sw, req, notFound("no such API path: "+r.URL.Path))
		return
	}
	req.zone, req.parts = parts[0], parts[4:]
	var findErr error
	if r.Method == http.MethodGet {
		req.find, findErr = parseFindCond(r.URL.RawQuery)
	}
	s.mu.Lock()
	req.op = s.classify(req)
	s.mu.Unlock()

	if !s.authorized(r) {
		s.finish(sw, req, &apiErr{http.StatusUnauthorized, "unauthorized", "invalid API key (access token or secret)"})
		return
	}
	if findErr != nil {
		s.finish(sw, req, badRequest("invalid query: "+findErr.Error()))
		return
	}
	done, after := s.injectFault(sw, req)
	if done {
		return
	}
	if _, known := zoneIDs[req.zone]; !contains(s.zones, req.zone) && !(globalOp(req.op) && known) {
		// A global resource (an ELB) answers under every zone's path.
		s.finish(sw, req, notFound("zone "+req.zone+" not found"))
		return
	}
	s.mu.Lock()
	s.settle()
	status, resp, aerr := s.dispatch(req)
	s.mu.Unlock()
	if after != nil {
		// The operation happened; now its answer is delayed, replaced or lost.
		if after.latency > 0 && !s.wait(req, after.latency) {
			return
		}
		if s.applyFault(sw, req, after) {
			return
		}
	}
	if aerr != nil {
		s.finish(sw, req, aerr)
		return
	}
	data, err := json.Marshal(resp)
	if err != nil {
		s.finish(sw, req, &apiErr{http.StatusInternalServerError, "internal_server_error", err.Error()})
		return
	}
	sw.Header().Set("Content-Type", "application/json; charset=UTF-8")
	sw.WriteHeader(status)
	_, _ = sw.Write(data)
	s.count(req.op, status)
}

// finish writes an error (if any) and counts the request.
func (s *Simulator) finish(w *statusWriter, req *request, e *apiErr) {
	s.writeErr(w, e)
	s.count(req.op, w.status)
}

// count records one answer: its HTTP status, or "dropped" (status 0) for
// a connection closed without an answer.
func (s *Simulator) count(op string, status int) {
	key := "dropped"
	if status != 0 {
		key = strconv.Itoa(status)
	}
	s.countKey(op, key)
}

func (s *Simulator) countKey(op, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.requests[op]
	if m == nil {
		m = map[string]int{}
		s.requests[op] = m
	}
	m[key]++
}

func (s *Simulator) writeErr(w http.ResponseWriter, e *apiErr) {
	s.mu.Lock()
	s.serial++
	serial := fmt.Sprintf("%032x", s.serial)
	s.mu.Unlock()
	body, _ := json.Marshal(map[string]any{
		"is_fatal":   true,
		"serial":     serial,
		"status":     fmt.Sprintf("%d %s", e.status, http.StatusText(e.status)),
		"error_code": e.code,
		"error_msg":  e.msg,
	})
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

func (s *Simulator) authorized(r *http.Request) bool {
	if s.opts.Token == "" && s.opts.Secret == "" {
		return true
	}
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	uok := subtle.ConstantTimeCompare([]byte(u), []byte(s.opts.Token)) == 1
	pok := subtle.ConstantTimeCompare([]byte(p), []byte(s.opts.Secret)) == 1
	return uok && pok
}

var classOps = map[string]string{"loadbalancer": "LoadBalancer", "vpcrouter": "VPCRouter", "database": "Database",
	"nfs": "NFS", "mobilegateway": "MobileGateway"}

// classify names the operation the way the controller's Stats do ("LoadBalancer.Create").
func (s *Simulator) classify(req *request) string {
	p := req.parts
	if len(p) == 0 {
		return "Unknown"
	}
	if p[0] == "commonserviceitem" {
		return classifyCommonServiceItem(req)
	}
	if op := classifyBridgeAction(p, req.method); op != "" {
		return op
	}
	resource := map[string]string{"server": "Server", "switch": "Switch", "internet": "Internet", "zone": "Zone",
		"bridge": "Bridge"}[p[0]]
	if p[0] == "appliance" {
		resource = "LoadBalancer"
		if len(p) == 1 {
			if c := classOps[req.find.class()]; c != "" {
				resource = c
			} else if req.method == http.MethodGet {
				resource = "Appliance"
			}
		} else if id, err := strconv.ParseInt(p[1], 10, 64); err == nil && s.vpcRouterByID(types.ID(id)) != nil {
			resource = "VPCRouter"
		}
	}
	if resource == "" {
		return "Unknown"
	}
	m := req.method
	switch {
	case len(p) == 1 && m == http.MethodGet:
		return resource + ".Find"
	case len(p) == 1 && m == http.MethodPost:
		return resource + ".Create"
	case len(p) == 2 && m == http.MethodGet:
		return resource + ".Read"
	case len(p) == 2 && m == http.MethodPut:
		if resource == "LoadBalancer" && isSettingsOnly(req.body, "Appliance") {
			return resource + ".UpdateSettings"
		}
		return resource + ".Update"
	case len(p) == 2 && m == http.MethodDelete:
		return resource + ".Delete"
	case len(p) == 3:
		switch {
		case p[2] == "server" && m == http.MethodGet && resource == "Switch":
			return "Switch.GetServers"
		case p[2] == "config" && m == http.MethodPut:
			return resource + ".Config"
		case p[2] == "power" && m == http.MethodPut:
			return resource + ".Boot"
		case p[2] == "power" && m == http.MethodDelete:
			return resource + ".Shutdown"
		case p[2] == "status" && m == http.MethodGet:
			return resource + ".Status"
		}
	}
	return resource + ".Unknown"
}

// isSettingsOnly tells UpdateSettings from Update: both PUT {resource}/{id}
// with the item under envelope, but UpdateSettings sends only Settings and
// SettingsHash (Update always sends Name/Description/Tags).
func isSettingsOnly(body []byte, envelope string) bool {
	var env map[string]map[string]json.RawMessage
	if json.Unmarshal(body, &env) != nil || env[envelope] == nil {
		return false
	}
	for k := range env[envelope] {
		if k != "Settings" && k != "SettingsHash" {
			return false
		}
	}
	return true
}

// dispatch runs one API operation. Called with mu held.
func (s *Simulator) dispatch(req *request) (int, any, *apiErr) {
	p := req.parts
	var id types.ID
	if len(p) >= 2 {
		n, err := strconv.ParseInt(p[1], 10, 64)
		if err != nil || n <= 0 {
			return 0, nil, notFound("invalid resource id " + p[1])
		}
		id = types.ID(n)
	}
	if globalOp(req.op) {
		if status, resp, e, handled := s.dispatchProxyLB(req, id); handled {
			return status, resp, e
		}
	}
	if status, resp, e, handled := s.dispatchBridge(req, id); handled {
		return status, resp, e
	}
	if req.zone != s.zone {
		if status, resp, e, handled := s.dispatchOtherZone(req); handled {
			return status, resp, e
		}
	}
	// An appliance of another zone (seeded by the topology) is listed in
	// its zone only; by ID it is unknown to the main zone's operations.
	if strings.HasPrefix(req.op, "LoadBalancer.") || strings.HasPrefix(req.op, "VPCRouter.") {
		if sw, ok := s.applianceSwitch(id); ok && s.applianceZone(sw) != req.zone {
			return 0, nil, notFound(fmt.Sprintf("appliance %s not found in zone %s", id, req.zone))
		}
	}
	switch req.op {
	case "Server.Find":
		var cands []candidate
		for _, sv := range s.servers {
			if sv.Zone != req.zone {
				continue
			}
			sv := sv
			cands = append(cands, candidate{sv.ID, sv.Name, s.serverRecord(sv), func() any { return s.nakedServer(sv) }})
		}
		return s.runFind(req.find, serverKeys, req.op, "Servers", cands)
	case "Server.Read":
		sv := s.serverByID(id)
		if sv == nil || sv.Zone != req.zone {
			return 0, nil, notFound("server " + p[1] + " not found")
		}
		return ok(map[string]any{"Server": s.nakedServer(sv)})
	case "Switch.Find":
		var cands []candidate
		for _, sw := range s.switches {
			if sw.Zone != req.zone {
				continue
			}
			sw := sw
			cands = append(cands, candidate{sw.ID, sw.Name, s.switchRecord(sw), func() any { return s.nakedSwitch(sw) }})
		}
		return s.runFind(req.find, switchKeys, req.op, "Switches", cands)
	case "Switch.Read":
		sw := s.switchByID(id)
		if sw == nil || sw.Zone != req.zone {
			return 0, nil, notFound("switch " + p[1] + " not found")
		}
		return ok(map[string]any{"Switch": s.nakedSwitch(sw)})
	case "Switch.GetServers":
		sw := s.switchByID(id)
		if sw == nil || sw.Zone != req.zone {
			return 0, nil, notFound("switch " + p[1] + " not found")
		}
		var items []*naked.Server
		for _, sv := range s.servers {
			for _, n := range sv.NICs {
				if n.SwitchID == sw.ID {
					items = append(items, s.nakedServer(sv))
					break
				}
			}
		}
		return http.StatusOK, map[string]any{"Total": len(items), "From": 0, "Count": len(items), "Servers": items}, nil
	case "Internet.Find":
		var cands []candidate
		for _, r := range s.routers {
			if r.Zone != req.zone {
				continue
			}
			r := r
			cands = append(cands, candidate{r.ID, r.Name, s.internetRecord(r), func() any { return s.nakedInternet(r) }})
		}
		return s.runFind(req.find, internetKeys, req.op, "Internet", cands)
	case "Internet.Read":
		r := s.routerByID(id)
		if r == nil || r.Zone != req.zone {
			return 0, nil, notFound("router " + p[1] + " not found")
		}
		return ok(map[string]any{"Internet": s.nakedInternet(r)})
	case "Zone.Find":
		var cands []candidate
		for _, name := range s.zones {
			z := nakedZoneOf(name)
			rec := record{"ID": ids(z.ID), "Name": {z.Name}}
			cands = append(cands, candidate{z.ID, z.Name, rec, func() any { return z }})
		}
		return s.runFind(req.find, zoneKeys, req.op, "Zones", cands)
	case "Zone.Read":
		for _, name := range s.zones {
			if id == zoneIDOf(name) {
				return ok(map[string]any{"Zone": nakedZoneOf(name)})
			}
		}
		return 0, nil, notFound("zone " + p[1] + " not found")
	case "LoadBalancer.Find", "VPCRouter.Find", "Database.Find", "NFS.Find", "MobileGateway.Find", "Appliance.Find":
		return s.findAppliances(req.find, req.op, req.zone)
	case "VPCRouter.Read":
		return ok(map[string]any{"Appliance": s.nakedVPCRouter(s.vpcRouterByID(id))})
	case "LoadBalancer.Create":
		return s.lbCreate(req.zone, req.body)
	case "LoadBalancer.Read":
		lb, e := s.lbForRead(id)
		if e != nil {
			return 0, nil, e
		}
		return ok(map[string]any{"Appliance": wireLB(s.nakedLB(lb))})
	case "LoadBalancer.Update", "LoadBalancer.UpdateSettings":
		return s.lbUpdate(id, req.body, req.op == "LoadBalancer.UpdateSettings")
	case "LoadBalancer.Delete":
		return s.lbDelete(id)
	case "LoadBalancer.Config":
		return s.lbConfig(id)
	case "LoadBalancer.Boot":
		return s.lbPower(id, true, req.body)
	case "LoadBalancer.Shutdown":
		return s.lbPower(id, false, req.body)
	case "LoadBalancer.Status":
		return s.lbStatus(id)
	}
	return 0, nil, notFound(fmt.Sprintf("operation not supported by the simulator: %s /%s", req.method, strings.Join(p, "/")))
}

// applianceSwitch is the switch of the load balancer or VPC router id, if
// there is one of that ID.
func (s *Simulator) applianceSwitch(id types.ID) (types.ID, bool) {
	if lb := s.lbByID(id); lb != nil {
		return lb.SwitchID, true
	}
	if v := s.vpcRouterByID(id); v != nil {
		return v.SwitchID, true
	}
	return 0, false
}

// dispatchOtherZone answers what a zone other than the main one holds
// besides servers, switches and the appliances its topology seeds (listed
// by dispatch): nothing. Anything but a list is 404, the way the API
// answers for an ID of another zone. Servers, switches, zones and lists go
// on to dispatch (handled false); bridges were answered before.
func (s *Simulator) dispatchOtherZone(req *request) (int, any, *apiErr, bool) {
	// Load balancers and routers live in their switch's zone: the
	// operations below check the zone of the one named.
	if strings.HasPrefix(req.op, "Server.") || strings.HasPrefix(req.op, "Switch.") || strings.HasPrefix(req.op, "Zone.") ||
		strings.HasPrefix(req.op, "LoadBalancer.") || strings.HasPrefix(req.op, "Internet.") || strings.HasSuffix(req.op, ".Find") {
		return 0, nil, nil, false
	}
	return 0, nil, notFound(fmt.Sprintf("the simulator keeps %s only in zone %s, not in %s", req.op, s.zone, req.zone)), true
}

func ok(env map[string]any) (int, any, *apiErr) {
	env["is_ok"] = true
	env["Success"] = true
	return http.StatusOK, env, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// findAppliances lists zone's load balancers and VPC routers (in ID
// order), an appliance being in its switch's zone; the Class filter that
// every appliance find carries selects the kind, so database, NFS and
// mobile gateway finds answer an empty list.
func (s *Simulator) findAppliances(fc *findCond, op, zone string) (int, any, *apiErr) {
	var cands []candidate
	for _, lb := range s.lbs {
		if s.hiddenByCreateWindow(lb) || s.applianceZone(lb.SwitchID) != zone {
			continue
		}
		lb := lb
		cands = append(cands, candidate{lb.ID, lb.Name, s.lbRecord(lb), func() any { return wireLB(s.nakedLB(lb)) }})
	}
	for _, v := range s.vpcRouters {
		if s.applianceZone(v.SwitchID) != zone {
			continue
		}
		v := v
		cands = append(cands, candidate{v.ID, v.Name, s.vpcRouterRecord(v), func() any { return s.nakedVPCRouter(v) }})
	}
	return s.runFind(fc, applianceKeys, op, "Appliances", cands)
}
