package sakurasim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/sacloud/iaas-api-go/types"
)

// findCond is a find request's condition, sent as JSON in the raw query
// string (iaas-api-go and libsacloud both append "?{...}" to the URL).
type findCond struct {
	Count   int
	From    int
	Sort    []string
	Filter  map[string]json.RawMessage
	Include []string // accepted and ignored: answers always carry every field
	Exclude []string // accepted and ignored
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

// class returns the single Class a find asks for ("" when none or several).
func (fc *findCond) class() string { return fc.classOf("Class") }

// classOf returns the single value a find asks key to equal ("" when
// none or several).
func (fc *findCond) classOf(key string) string {
	if fc == nil {
		return ""
	}
	raw, ok := fc.Filter[key]
	if !ok {
		return ""
	}
	e, err := parseFilterValue(raw)
	if err != nil {
		return ""
	}
	switch {
	case e.scalar != nil:
		return *e.scalar
	case len(e.anyOf) == 1 && len(e.anyOf[0]) == 1:
		return e.anyOf[0][0]
	}
	return ""
}

// fieldKind says how a scalar (non-array) filter value compares.
type fieldKind int

const (
	// exactField: the value equals the field (IDs, Class, Scope, states).
	exactField fieldKind = iota
	// textField: every space-separated word is a case-insensitive
	// substring (search.PartialMatch, libsacloud's WithNameLike).
	textField
	// tagField: every space-separated word is one of the tags
	// (libsacloud's WithTag, called once or several times).
	tagField
)

// findable lists the filter keys one kind of resource answers to. The keys
// are the JSON paths of the answer's fields, as the real API names them.
type findable struct {
	keys map[string]fieldKind
}

func keySet(parts ...map[string]fieldKind) *findable {
	f := &findable{keys: map[string]fieldKind{}}
	for _, p := range parts {
		for k, v := range p {
			f.keys[k] = v
		}
	}
	return f
}

var (
	commonKeys = map[string]fieldKind{"ID": exactField, "Name": textField, "Zone.ID": exactField, "Zone.Name": exactField}
	// "Tags.Name" is the real key (iaas-api-go search/keys.Tags, libsacloud
	// WithTag/WithTags); "Tags" is accepted as an alias.
	tagKeys = map[string]fieldKind{"Tags.Name": tagField, "Tags": tagField}

	serverKeys = keySet(commonKeys, tagKeys, map[string]fieldKind{
		"HostName": textField, "Availability": exactField, "Instance.Status": exactField,
		"ServerPlan.ID": exactField, "ServerPlan.CPU": exactField, "ServerPlan.MemoryMB": exactField,
		"ServerPlan.GPU": exactField, "Interfaces.Switch.ID": exactField})
	switchKeys   = keySet(commonKeys, tagKeys, map[string]fieldKind{"Scope": exactField})
	internetKeys = keySet(commonKeys, tagKeys, map[string]fieldKind{"Scope": exactField, "Switch.ID": exactField,
		"BandWidthMbps": exactField})
	applianceKeys = keySet(commonKeys, tagKeys, map[string]fieldKind{"Class": exactField, "Description": textField,
		"Availability": exactField, "Instance.Status": exactField, "Plan.ID": exactField, "Switch.ID": exactField})
	zoneKeys = keySet(map[string]fieldKind{"ID": exactField, "Name": exactField})
	// bridgeKeys: a bridge has no tags and no zone of its own.
	bridgeKeys = keySet(map[string]fieldKind{"ID": exactField, "Name": textField, "Description": textField})
)

// sortKeys are the Sort keys a find may use (with a leading "-" for descending).
var sortKeys = []string{"ID", "Name"}

func (f *findable) names() string {
	var out []string
	for k := range f.keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// filterExpr is one parsed filter value: a scalar, or an array whose
// elements are OR'ed, each element a set of values that must all match
// (a plain value is a one-element set; search.TagsAndEqual sends an array).
type filterExpr struct {
	scalar *string
	anyOf  [][]string
	none   bool // JSON null: no condition
}

func filterScalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		if u, err := url.PathUnescape(x); err == nil {
			return u, nil // the clients path-escape string values
		}
		return x, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return strconv.FormatInt(n, 10), nil
		}
		return x.String(), nil
	case bool:
		return "", fmt.Errorf("boolean values are not supported by the simulator")
	case nil:
		return "", fmt.Errorf("null inside an array")
	}
	return "", fmt.Errorf("objects are not filter values")
}

func parseFilterValue(raw json.RawMessage) (*filterExpr, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if v == nil {
		return &filterExpr{none: true}, nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		s, err := filterScalar(v)
		if err != nil {
			return nil, err
		}
		return &filterExpr{scalar: &s}, nil
	}
	e := &filterExpr{anyOf: [][]string{}}
	for _, el := range arr {
		if el == nil {
			continue // iaas-api-go drops nil conditions; a hand-made null is ignored too
		}
		inner, isInner := el.([]any)
		if !isInner {
			s, err := filterScalar(el)
			if err != nil {
				return nil, err
			}
			e.anyOf = append(e.anyOf, []string{s})
			continue
		}
		var set []string
		for _, x := range inner {
			if _, deeper := x.([]any); deeper {
				return nil, fmt.Errorf("arrays nest at most two levels")
			}
			s, err := filterScalar(x)
			if err != nil {
				return nil, err
			}
			set = append(set, s)
		}
		e.anyOf = append(e.anyOf, set)
	}
	return e, nil
}

// compile parses the filter, refusing what the simulator cannot interpret
// and naming the key: an unknown filter key (instead of silently ignoring it
// and answering with everything), a comparison operator, a malformed value
// or a Sort key other than ID and Name.
func (fc *findCond) compile(f *findable, op string) (map[string]*filterExpr, *apiErr) {
	out := map[string]*filterExpr{}
	if fc == nil {
		return out, nil
	}
	keys := make([]string, 0, len(fc.Filter))
	for k := range fc.Filter {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic: the first bad key in name order is reported
	for _, key := range keys {
		if i := strings.IndexAny(key, "<>"); i >= 0 {
			return nil, badRequest(fmt.Sprintf("Filter key %q: comparison operators (%q) are not supported by the simulator", key, key[i:]))
		}
		if _, ok := f.keys[key]; !ok {
			return nil, badRequest(fmt.Sprintf("Filter key %q is not supported by the simulator for %s (supported: %s)", key, op, f.names()))
		}
		e, err := parseFilterValue(fc.Filter[key])
		if err != nil {
			return nil, badRequest(fmt.Sprintf("Filter key %q: invalid value: %v", key, err))
		}
		if !e.none {
			out[key] = e
		}
	}
	for _, k := range fc.Sort {
		if key := strings.TrimPrefix(k, "-"); key != "ID" && key != "Name" {
			return nil, badRequest(fmt.Sprintf("Sort key %q is not supported by the simulator (supported: %s, optionally with a leading -)", k, strings.Join(sortKeys, ", ")))
		}
	}
	return out, nil
}

// record holds a resource's values for each filter key of its findable.
type record map[string][]string

func matchAll(f *findable, exprs map[string]*filterExpr, rec record) bool {
	for key, e := range exprs {
		if !e.matches(f.keys[key], rec[key]) {
			return false
		}
	}
	return true
}

func (e *filterExpr) matches(kind fieldKind, vals []string) bool {
	if e.scalar != nil {
		s := *e.scalar
		switch kind {
		case exactField:
			return hasValue(vals, s)
		case textField:
			for _, w := range strings.Fields(s) {
				found := false
				for _, v := range vals {
					if strings.Contains(strings.ToLower(v), strings.ToLower(w)) {
						found = true
					}
				}
				if !found {
					return false
				}
			}
			return true
		case tagField:
			for _, w := range strings.Fields(s) {
				if !hasValue(vals, w) {
					return false
				}
			}
			return true
		}
	}
	for _, set := range e.anyOf {
		all := len(set) > 0
		for _, want := range set {
			if !hasValue(vals, want) {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

func hasValue(vals []string, want string) bool {
	for _, v := range vals {
		if v == want {
			return true
		}
	}
	return false
}

// candidate is one resource a find may return, rendered only when on the page.
type candidate struct {
	id     types.ID
	name   string
	rec    record
	render func() any
}

// runFind compiles the condition, filters, sorts (ID order unless Sort says
// otherwise), pages (Count 0 → default page size) and builds the plural
// envelope under key.
func (s *Simulator) runFind(fc *findCond, f *findable, op, key string, cands []candidate) (int, any, *apiErr) {
	exprs, e := fc.compile(f, op)
	if e != nil {
		return 0, nil, e
	}
	var hits []candidate
	for _, c := range cands {
		if matchAll(f, exprs, c.rec) {
			hits = append(hits, c)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].id < hits[j].id })
	if fc != nil && len(fc.Sort) > 0 {
		sort.SliceStable(hits, func(i, j int) bool {
			for _, k := range fc.Sort {
				desc := strings.HasPrefix(k, "-")
				var c int
				switch strings.TrimPrefix(k, "-") {
				case "ID":
					c = compareInt(int64(hits[i].id), int64(hits[j].id))
				case "Name":
					c = strings.Compare(hits[i].name, hits[j].name)
				}
				if desc {
					c = -c
				}
				if c != 0 {
					return c < 0
				}
			}
			return false
		})
	}
	total := len(hits)
	from, count := 0, s.opts.DefaultPageSize
	if fc != nil {
		from = fc.From
		if fc.Count > 0 {
			count = fc.Count
		}
	}
	from = min(from, total)
	end := min(from+count, total)
	items := []any{}
	for _, c := range hits[from:end] {
		items = append(items, c.render())
	}
	return http.StatusOK, map[string]any{"Total": total, "From": from, "Count": len(items), key: items}, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func ids(list ...types.ID) []string {
	out := make([]string, 0, len(list))
	for _, id := range list {
		if id != 0 {
			out = append(out, id.String())
		}
	}
	return out
}

func (s *Simulator) zoneValues(rec record) record { return zoneValuesOf(s.zone, rec) }

func zoneValuesOf(zone string, rec record) record {
	rec["Zone.ID"] = ids(zoneIDOf(zone))
	rec["Zone.Name"] = []string{zone}
	return rec
}

func (s *Simulator) serverRecord(sv *server) record {
	status := types.ServerInstanceStatuses.Down
	if sv.Up {
		status = types.ServerInstanceStatuses.Up
	}
	var sws []types.ID
	for _, n := range sv.NICs {
		sws = append(sws, n.SwitchID)
	}
	return zoneValuesOf(sv.Zone, record{
		"ID": ids(sv.ID), "Name": {sv.Name}, "HostName": {sv.Name}, "Tags.Name": sv.Tags, "Tags": sv.Tags,
		"Availability": {string(types.Availabilities.Available)}, "Instance.Status": {string(status)},
		"ServerPlan.ID": ids(serverPlanID(sv)), "ServerPlan.CPU": {itoa(sv.CPU)}, "ServerPlan.MemoryMB": {itoa(sv.MemoryMB)},
		"ServerPlan.GPU": {itoa(sv.GPU)}, "Interfaces.Switch.ID": ids(sws...),
	})
}

func (s *Simulator) switchRecord(sw *switchRes) record {
	return zoneValuesOf(sw.Zone, record{"ID": ids(sw.ID), "Name": {sw.Name}, "Tags.Name": sw.Tags, "Tags": sw.Tags,
		"Scope": {string(types.Scopes.User)}})
}

func (s *Simulator) internetRecord(r *router) record {
	return s.zoneValues(record{"ID": ids(r.ID), "Name": {r.Name}, "Tags.Name": r.Tags, "Tags": r.Tags,
		"Scope": {string(types.Scopes.User)}, "Switch.ID": ids(r.SwitchID), "BandWidthMbps": {itoa(r.BandWidth)}})
}

func (s *Simulator) lbRecord(lb *loadBalancer) record {
	return s.zoneValues(record{"ID": ids(lb.ID), "Name": {lb.Name}, "Description": {lb.Description},
		"Tags.Name": lb.Tags, "Tags": lb.Tags, "Class": {"loadbalancer"}, "Availability": {string(lb.Availability)},
		"Instance.Status": {string(lb.Status)}, "Plan.ID": ids(lb.PlanID), "Switch.ID": ids(lb.SwitchID)})
}

// vpcRouterRecord: a VPC router's answer has no top-level Switch (its
// switches are under Interfaces), so Switch.ID matches none.
func (s *Simulator) vpcRouterRecord(v *vpcRouter) record {
	return s.zoneValues(record{"ID": ids(v.ID), "Name": {v.Name}, "Description": {""}, "Tags.Name": v.Tags, "Tags": v.Tags,
		"Class": {"vpcrouter"}, "Availability": {string(types.Availabilities.Available)},
		"Instance.Status": {string(types.ServerInstanceStatuses.Up)}, "Plan.ID": {"2"}})
}
