package sakurasim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	req := &request{method: r.Method}
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
	if req.zone != s.zone {
		s.finish(sw, req, notFound("zone "+req.zone+" not found"))
		return
	}
	s.mu.Lock()
	s.settle()
	status, resp, aerr := s.dispatch(req)
	s.mu.Unlock()
	if after != nil && s.applyFault(sw, req, after) {
		return // the operation happened, but its answer is lost
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

func (s *Simulator) count(op string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.requests[op]
	if m == nil {
		m = map[string]int{}
		s.requests[op] = m
	}
	key := "dropped"
	if status != 0 {
		key = strconv.Itoa(status)
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

// findCond is a find request's condition, sent as JSON in the raw query string.
type findCond struct {
	Count  int
	From   int
	Filter map[string]json.RawMessage
}

func parseFindCond(raw string) (*findCond, error) {
	fc := &findCond{}
	if raw == "" {
		return fc, nil
	}
	q := raw
	if !strings.HasPrefix(q, "{") {
		// URL-encoded JSON (e.g. from curl): decode once.
		un, err := url.PathUnescape(q)
		if err != nil {
			return nil, err
		}
		q = un
	}
	if !strings.HasPrefix(q, "{") {
		return nil, fmt.Errorf("find condition must be a JSON object")
	}
	if err := json.Unmarshal([]byte(q), fc); err != nil {
		return nil, err
	}
	if fc.Count < 0 || fc.From < 0 {
		return nil, fmt.Errorf("Count and From must not be negative")
	}
	return fc, nil
}

func (fc *findCond) class() string {
	if fc == nil {
		return ""
	}
	raw, ok := fc.Filter["Class"]
	if !ok {
		return ""
	}
	vals := filterValues(raw)
	if len(vals) == 1 {
		if s, ok := vals[0].(string); ok {
			return s
		}
	}
	return ""
}

var classOps = map[string]string{"loadbalancer": "LoadBalancer", "vpcrouter": "VPCRouter", "database": "Database",
	"nfs": "NFS", "mobilegateway": "MobileGateway"}

// classify names the operation the way the controller's Stats do ("LoadBalancer.Create").
func (s *Simulator) classify(req *request) string {
	p := req.parts
	if len(p) == 0 {
		return "Unknown"
	}
	resource := map[string]string{"server": "Server", "switch": "Switch", "internet": "Internet", "zone": "Zone"}[p[0]]
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
		if resource == "LoadBalancer" && isSettingsOnly(req.body) {
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

// isSettingsOnly tells UpdateSettings from Update: both PUT appliance/{id}, but
// UpdateSettings sends only Settings and SettingsHash (Update always sends
// Name/Description/Tags).
func isSettingsOnly(body []byte) bool {
	var env struct{ Appliance map[string]json.RawMessage }
	if json.Unmarshal(body, &env) != nil || env.Appliance == nil {
		return false
	}
	for k := range env.Appliance {
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
	switch req.op {
	case "Server.Find":
		var items []any
		for _, sv := range s.servers {
			if req.find.match(sv.ID, sv.Name, sv.Tags, "", "") {
				items = append(items, s.nakedServer(sv))
			}
		}
		return s.page(req.find, "Servers", items)
	case "Server.Read":
		sv := s.serverByID(id)
		if sv == nil {
			return 0, nil, notFound("server " + p[1] + " not found")
		}
		return ok(map[string]any{"Server": s.nakedServer(sv)})
	case "Switch.Find":
		var items []any
		for _, sw := range s.switches {
			if req.find.match(sw.ID, sw.Name, sw.Tags, "", string(types.Scopes.User)) {
				items = append(items, s.nakedSwitch(sw))
			}
		}
		return s.page(req.find, "Switches", items)
	case "Switch.Read":
		sw := s.switchByID(id)
		if sw == nil {
			return 0, nil, notFound("switch " + p[1] + " not found")
		}
		return ok(map[string]any{"Switch": s.nakedSwitch(sw)})
	case "Switch.GetServers":
		sw := s.switchByID(id)
		if sw == nil {
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
		var items []any
		for _, r := range s.routers {
			if req.find.match(r.ID, r.Name, r.Tags, "", string(types.Scopes.User)) {
				items = append(items, s.nakedInternet(r))
			}
		}
		return s.page(req.find, "Internet", items)
	case "Internet.Read":
		r := s.routerByID(id)
		if r == nil {
			return 0, nil, notFound("router " + p[1] + " not found")
		}
		return ok(map[string]any{"Internet": s.nakedInternet(r)})
	case "Zone.Find":
		z := s.nakedZone()
		if !req.find.match(z.ID, z.Name, nil, "", "") {
			return s.page(req.find, "Zones", nil)
		}
		return s.page(req.find, "Zones", []any{z})
	case "Zone.Read":
		if id != s.zoneID() {
			return 0, nil, notFound("zone " + p[1] + " not found")
		}
		return ok(map[string]any{"Zone": s.nakedZone()})
	case "LoadBalancer.Find", "VPCRouter.Find", "Database.Find", "NFS.Find", "MobileGateway.Find", "Appliance.Find":
		return s.findAppliances(req.find)
	case "VPCRouter.Read":
		return ok(map[string]any{"Appliance": s.nakedVPCRouter(s.vpcRouterByID(id))})
	case "LoadBalancer.Create":
		return s.lbCreate(req.body)
	case "LoadBalancer.Read":
		lb, e := s.lbForRead(id)
		if e != nil {
			return 0, nil, e
		}
		return ok(map[string]any{"Appliance": s.nakedLB(lb)})
	case "LoadBalancer.Update", "LoadBalancer.UpdateSettings":
		return s.lbUpdate(id, req.body, req.op == "LoadBalancer.UpdateSettings")
	case "LoadBalancer.Delete":
		return s.lbDelete(id)
	case "LoadBalancer.Config":
		lb, e := s.lbForWrite(id)
		if e != nil {
			return 0, nil, e
		}
		_ = lb
		return ok(map[string]any{})
	case "LoadBalancer.Boot":
		return s.lbPower(id, true, req.body)
	case "LoadBalancer.Shutdown":
		return s.lbPower(id, false, req.body)
	case "LoadBalancer.Status":
		return s.lbStatus(id)
	}
	return 0, nil, notFound(fmt.Sprintf("operation not supported by the simulator: %s /%s", req.method, strings.Join(p, "/")))
}

func ok(env map[string]any) (int, any, *apiErr) {
	env["is_ok"] = true
	env["Success"] = true
	return http.StatusOK, env, nil
}

// page applies From/Count (Count 0 → default page size) and builds the plural envelope.
func (s *Simulator) page(fc *findCond, key string, items []any) (int, any, *apiErr) {
	total := len(items)
	from, count := 0, s.opts.DefaultPageSize
	if fc != nil {
		from = fc.From
		if fc.Count > 0 {
			count = fc.Count
		}
	}
	if from > total {
		from = total
	}
	end := from + count
	if end > total {
		end = total
	}
	pageItems := items[from:end]
	if pageItems == nil {
		pageItems = []any{}
	}
	return http.StatusOK, map[string]any{"Total": total, "From": from, "Count": len(pageItems), key: pageItems}, nil
}

func (s *Simulator) findAppliances(fc *findCond) (int, any, *apiErr) {
	var items []any
	type entry struct {
		id   types.ID
		item any
	}
	var all []entry
	for _, lb := range s.lbs {
		if s.hiddenByCreateWindow(lb) {
			continue
		}
		if fc.match(lb.ID, lb.Name, lb.Tags, "loadbalancer", "") {
			all = append(all, entry{lb.ID, s.nakedLB(lb)})
		}
	}
	for _, v := range s.vpcRouters {
		if fc.match(v.ID, v.Name, v.Tags, "vpcrouter", "") {
			all = append(all, entry{v.ID, s.nakedVPCRouter(v)})
		}
	}
	// keep ID order across kinds
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && all[j].id < all[j-1].id; j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	for _, e := range all {
		items = append(items, e.item)
	}
	return s.page(fc, "Appliances", items)
}

// filterValues decodes a filter value: the client always sends arrays for
// equality, but a bare scalar is accepted too.
func filterValues(raw json.RawMessage) []any {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	if arr, ok := v.([]any); ok {
		return arr
	}
	return []any{v}
}

func unesc(v string) string {
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return unesc(x), true
	case float64:
		return strconv.FormatInt(int64(x), 10), true
	}
	return "", false
}

// match implements the filter subset documented in docs/simulator.md:
// Name (string: every word a case-insensitive substring; array: exact, OR),
// ID, Class, Scope (equal, OR) and Tags (string: has tag; array element that is
// itself an array: has all of them; elements OR'ed). Other keys are ignored.
func (fc *findCond) match(id types.ID, name string, tags []string, class, scope string) bool {
	if fc == nil {
		return true
	}
	for key, raw := range fc.Filter {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return false
		}
		switch key {
		case "Name":
			if str, ok := v.(string); ok {
				words := strings.Fields(strings.ReplaceAll(unesc(str), "%20", " "))
				for _, w := range words {
					if !strings.Contains(strings.ToLower(name), strings.ToLower(w)) {
						return false
					}
				}
				continue
			}
			if !anyEqual(filterValues(raw), name) {
				return false
			}
		case "ID":
			if !anyEqual(filterValues(raw), id.String()) {
				return false
			}
		case "Class":
			if class != "" && !anyEqual(filterValues(raw), class) {
				return false
			}
		case "Scope":
			if scope != "" && !anyEqual(filterValues(raw), scope) {
				return false
			}
		case "Tags":
			matched := false
			for _, cond := range filterValues(raw) {
				switch c := cond.(type) {
				case []any:
					all := true
					for _, t := range c {
						ts, _ := scalarString(t)
						if !contains(tags, ts) {
							all = false
						}
					}
					if all && len(c) > 0 {
						matched = true
					}
				default:
					if ts, ok := scalarString(c); ok && contains(tags, ts) {
						matched = true
					}
				}
			}
			if !matched {
				return false
			}
		}
	}
	return true
}

func anyEqual(vals []any, want string) bool {
	for _, v := range vals {
		if s, ok := scalarString(v); ok && s == want {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
