// Package gcefake is a wire-level fake of the Compute Engine REST API (v1)
// for what the GCP backend uses: instances insert, get, list, delete and
// setLabels (with its label fingerprint: a stale one is a 412, as on
// Compute Engine), and
// zone operations get and wait, at the paths the Go REST client
// (cloud.google.com/go/compute/apiv1) calls through option.WithEndpoint.
//
// It keeps instances in memory (JSON through the client's own protobuf
// types), honours requestId like Compute Engine (the same id returns the same
// operation and makes nothing twice), checks the list filter's syntax
// (`labels.KEY = "VALUE"` terms joined by AND; anything else is a 400), and
// injects errors on demand (Fault), in the HTTP answer or in the operation.
package gcefake

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Instance is one instance as the fake keeps it.
type Instance struct {
	Project string
	Zone    string
	// Resource is the instance as inserted, with id, status, zone and
	// creationTimestamp filled in.
	Resource *computepb.Instance
	// RequestID of the insert.
	RequestID string
}

// Metadata returns the value of a metadata key, and whether it is set.
func (i Instance) Metadata(key string) (string, bool) {
	for _, it := range i.Resource.GetMetadata().GetItems() {
		if it.GetKey() == key {
			return it.GetValue(), true
		}
	}
	return "", false
}

// Fault is an error the fake answers with. Empty match fields match anything.
type Fault struct {
	// Method: insert, get, list, delete, setLabels, wait (operations get and wait); "" any.
	Method string
	// Zone the call is for.
	Zone string
	// Provisioning matches an insert's scheduling.provisioningModel (SPOT or
	// STANDARD; an insert without one is STANDARD).
	Provisioning string
	// Status is the HTTP status of the error (e.g. 403, 429, 503); in an
	// operation, its httpErrorStatusCode.
	Status int
	// Reason: in an HTTP error, errors[].reason (e.g. quotaExceeded,
	// rateLimitExceeded); in an operation, error.errors[].code (e.g.
	// ZONE_RESOURCE_POOL_EXHAUSTED, QUOTA_EXCEEDED).
	Reason  string
	Message string
	// InOperation: an insert is accepted (200, an operation) and the
	// operation ends DONE with this error, making no instance.
	InOperation bool
	// AfterAction: the call is carried out, then the HTTP error is
	// returned (a lost response).
	AfterAction bool
	// Times the fault fires; 0 for every matching call.
	Times int
}

type operation struct {
	op      *computepb.Operation
	project string
	zone    string
	// polls left before DONE; done applies the outcome.
	polls int
	done  func()
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu        sync.Mutex
	instances map[string]*Instance // project/zone/name
	order     []string
	ops       map[string]*operation // project/zone/op
	requests  map[string]string     // requestId -> op key
	faults    []*Fault
	badImages map[string]bool
	calls     map[string]int
	filters   []string
	opPolls   int
	seq       uint64
	now       func() time.Time
}

// New starts a fake. Operations are done at the first poll (get or wait).
func New() *Server {
	s := &Server{
		instances: map[string]*Instance{},
		ops:       map[string]*operation{},
		requests:  map[string]string{},
		badImages: map[string]bool{},
		calls:     map[string]int{},
		now:       time.Now,
		opPolls:   1,
	}
	s.srv = httptest.NewServer(s.routes())
	return s
}

// URL is the endpoint to give the client (option.WithEndpoint).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Inject adds a fault.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// SetOperationPolls sets how many polls (get or wait) an operation needs to
// be DONE; at least 1.
func (s *Server) SetOperationPolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opPolls = max(n, 1)
}

// RejectImage makes inserts of that sourceImage answer 404.
func (s *Server) RejectImage(image string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badImages[image] = true
}

// Calls returns how many calls of the method (insert, get, list, delete, wait) the fake received.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Filters returns every list filter received, in order.
func (s *Server) Filters() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.filters)
}

// Instances returns copies of the instances, in creation order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.order))
	for _, k := range s.order {
		i := s.instances[k]
		out = append(out, Instance{Project: i.Project, Zone: i.Zone, RequestID: i.RequestID,
			Resource: proto.Clone(i.Resource).(*computepb.Instance)})
	}
	return out
}

// ByLabel returns the instances whose label key has value.
func (s *Server) ByLabel(key, value string) []Instance {
	var out []Instance
	for _, i := range s.Instances() {
		if v, ok := i.Resource.GetLabels()[key]; ok && v == value {
			out = append(out, i)
		}
	}
	return out
}

// Put adds an instance directly (a foreign one, for tests).
func (s *Server) Put(project, zone string, r *computepb.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r = proto.Clone(r).(*computepb.Instance)
	s.fill(project, zone, r)
	r.Status = proto.String("RUNNING")
	k := project + "/" + zone + "/" + r.GetName()
	s.instances[k] = &Instance{Project: project, Zone: zone, Resource: r}
	s.order = append(s.order, k)
}

func (s *Server) fill(project, zone string, r *computepb.Instance) {
	s.seq++
	r.Id = proto.Uint64(1000000 + s.seq)
	r.Zone = proto.String(s.srv.URL + "/compute/v1/projects/" + project + "/zones/" + zone)
	r.SelfLink = proto.String(r.GetZone() + "/instances/" + r.GetName())
	r.CreationTimestamp = proto.String(s.now().Format("2006-01-02T15:04:05.000-07:00"))
	r.Kind = proto.String("compute#instance")
	r.LabelFingerprint = proto.String(fingerprint(r.GetLabels()))
}

func (s *Server) remove(k string) {
	delete(s.instances, k)
	s.order = slices.DeleteFunc(s.order, func(x string) bool { return x == k })
}

// httpError is a Compute Engine error answer.
type httpError struct {
	status  int
	reason  string
	message string
}

func (s *Server) writeError(w http.ResponseWriter, e httpError) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(e.status)
	body := map[string]any{"error": map[string]any{
		"code":    e.status,
		"message": e.message,
		"errors":  []map[string]string{{"domain": "global", "reason": e.reason, "message": e.message}},
	}}
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := protojson.Marshal(m)
	if err != nil {
		s.writeError(w, httpError{http.StatusInternalServerError, "backendError", err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = w.Write(b)
}

// zonePath is the root of the zonal resources, as the Go REST client
// names them.
const zonePath = "/compute/v1/projects/{project}/zones/{zone}"

// routes maps each method and path of the API to the call it counts as (an
// operation's get and wait are both "wait"). A known path with another
// method is a 405, an unknown path a 404, both in the API's error format.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	fallbacks := map[string]bool{}
	for _, r := range []struct{ method, path, call string }{
		{http.MethodPost, "/instances", "insert"},
		{http.MethodGet, "/instances", "list"},
		{http.MethodGet, "/instances/{name}", "get"},
		{http.MethodDelete, "/instances/{name}", "delete"},
		{http.MethodPost, "/instances/{name}/setLabels", "setLabels"},
		{http.MethodGet, "/operations/{name}", "wait"},
		{http.MethodGet, "/operations/{name}/wait", "wait"},
		{http.MethodPost, "/operations/{name}/wait", "wait"},
	} {
		mux.HandleFunc(r.method+" "+zonePath+r.path, func(w http.ResponseWriter, req *http.Request) {
			s.serve(w, req, r.call)
		})
		// Once per path: registering a pattern twice panics.
		if pattern := zonePath + r.path; !fallbacks[pattern] {
			fallbacks[pattern] = true
			mux.HandleFunc(pattern, func(w http.ResponseWriter, req *http.Request) {
				s.writeError(w, httpError{http.StatusMethodNotAllowed, "methodNotAllowed", req.Method + " " + req.URL.Path})
			})
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, httpError{http.StatusNotFound, "notFound", "unknown path " + r.URL.Path})
	})
	return mux
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, method string) {
	project, zone, name := r.PathValue("project"), r.PathValue("zone"), r.PathValue("name")
	var setLabels *computepb.InstancesSetLabelsRequest
	if method == "setLabels" {
		setLabels = &computepb.InstancesSetLabelsRequest{}
		var raw json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil || protojson.Unmarshal(raw, setLabels) != nil {
			s.writeError(w, httpError{http.StatusBadRequest, "parseError", "invalid InstancesSetLabelsRequest"})
			return
		}
	}
	var insert *computepb.Instance
	if method == "insert" {
		insert = &computepb.Instance{}
		var raw json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			s.writeError(w, httpError{http.StatusBadRequest, "parseError", "invalid JSON"})
			return
		}
		if err := protojson.Unmarshal(raw, insert); err != nil {
			s.writeError(w, httpError{http.StatusBadRequest, "invalid", "invalid instance: " + err.Error()})
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	f := s.fault(method, zone, insert)
	if f != nil && !f.InOperation && !f.AfterAction {
		s.writeError(w, faultError(f))
		return
	}
	var (
		resp proto.Message
		herr *httpError
	)
	q := r.URL.Query()
	switch method {
	case "insert":
		resp, herr = s.insert(project, zone, q.Get("requestId"), insert, f)
	case "list":
		resp, herr = s.list(project, zone, q)
	case "get":
		if i, ok := s.instances[project+"/"+zone+"/"+name]; ok {
			resp = i.Resource
		} else {
			herr = notFound("instances", project, zone, name)
		}
	case "delete":
		resp, herr = s.delete(project, zone, name, q.Get("requestId"))
	case "setLabels":
		resp, herr = s.setLabels(project, zone, name, setLabels)
	case "wait":
		op, ok := s.ops[project+"/"+zone+"/"+name]
		if !ok {
			herr = notFound("operations", project, zone, name)
			break
		}
		if op.polls > 0 {
			op.polls--
		}
		if op.polls == 0 && op.op.GetStatus() != computepb.Operation_DONE {
			op.op.Status = computepb.Operation_DONE.Enum()
			op.op.Progress = proto.Int32(100)
			op.op.EndTime = proto.String(s.now().Format(time.RFC3339))
			if op.done != nil {
				op.done()
			}
		}
		resp = op.op
	}
	switch {
	case f != nil && f.AfterAction:
		s.writeError(w, faultError(f))
	case herr != nil:
		s.writeError(w, *herr)
	default:
		s.writeProto(w, resp)
	}
}

func faultError(f *Fault) httpError {
	e := httpError{f.Status, f.Reason, f.Message}
	if e.status == 0 {
		e.status = http.StatusServiceUnavailable
	}
	if e.reason == "" {
		e.reason = "backendError"
	}
	if e.message == "" {
		e.message = "injected " + e.reason
	}
	return e
}

func notFound(kind, project, zone, name string) *httpError {
	return &httpError{http.StatusNotFound, "notFound",
		fmt.Sprintf("The resource 'projects/%s/zones/%s/%s/%s' was not found", project, zone, kind, name)}
}

func (s *Server) fault(method, zone string, insert *computepb.Instance) *Fault {
	model := "STANDARD"
	if insert != nil && insert.GetScheduling().GetProvisioningModel() != "" {
		model = insert.GetScheduling().GetProvisioningModel()
	}
	for i, f := range s.faults {
		if (f.Method != "" && f.Method != method) || (f.Zone != "" && f.Zone != zone) ||
			(f.Provisioning != "" && (insert == nil || f.Provisioning != model)) {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
		}
		return f
	}
	return nil
}

var (
	nameRe       = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	labelKeyRe   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	labelValueRe = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
	metaKeyRe    = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
)

func (s *Server) newOp(project, zone, typ, target string) *operation {
	s.seq++
	name := fmt.Sprintf("operation-%d-%s", s.now().UnixMilli(), randHex())
	base := s.srv.URL + "/compute/v1/projects/" + project + "/zones/" + zone
	op := &operation{
		op: &computepb.Operation{
			Kind: proto.String("compute#operation"), Id: proto.Uint64(5000000 + s.seq), Name: proto.String(name),
			Zone: proto.String(base), OperationType: proto.String(typ),
			TargetLink: proto.String(base + "/instances/" + target), Status: computepb.Operation_RUNNING.Enum(),
			Progress: proto.Int32(0), InsertTime: proto.String(s.now().Format(time.RFC3339)),
			SelfLink: proto.String(base + "/operations/" + name),
		},
		project: project, zone: zone, polls: s.opPolls,
	}
	s.ops[project+"/"+zone+"/"+name] = op
	return op
}

func (s *Server) insert(project, zone, requestID string, r *computepb.Instance, f *Fault) (proto.Message, *httpError) {
	bad := func(msg string) *httpError { return &httpError{http.StatusBadRequest, "invalid", msg} }
	if requestID != "" {
		if k, ok := s.requests[requestID]; ok {
			return s.ops[k].op, nil
		}
	}
	switch {
	case !nameRe.MatchString(r.GetName()):
		return nil, bad(fmt.Sprintf("Invalid value for field 'resource.name': '%s'.", r.GetName()))
	case !strings.HasPrefix(r.GetMachineType(), "zones/"+zone+"/machineTypes/") &&
		!strings.Contains(r.GetMachineType(), "/zones/"+zone+"/machineTypes/"):
		return nil, bad(fmt.Sprintf("Invalid value for field 'resource.machineType': '%s'.", r.GetMachineType()))
	case len(r.GetDisks()) == 0 || !r.GetDisks()[0].GetBoot() || r.GetDisks()[0].GetInitializeParams().GetSourceImage() == "":
		return nil, bad("a boot disk with initializeParams.sourceImage is required")
	case len(r.GetNetworkInterfaces()) == 0:
		return nil, bad("a network interface is required")
	}
	if img := r.GetDisks()[0].GetInitializeParams().GetSourceImage(); s.badImages[img] {
		return nil, &httpError{http.StatusNotFound, "notFound", fmt.Sprintf("The resource '%s' was not found", img)}
	}
	for k, v := range r.GetLabels() {
		if !labelKeyRe.MatchString(k) || !labelValueRe.MatchString(v) {
			return nil, bad(fmt.Sprintf("Invalid value for field 'resource.labels': '%s'", k))
		}
	}
	for _, it := range r.GetMetadata().GetItems() {
		if !metaKeyRe.MatchString(it.GetKey()) {
			return nil, bad(fmt.Sprintf("Invalid value for field 'resource.metadata': '%s'", it.GetKey()))
		}
	}
	k := project + "/" + zone + "/" + r.GetName()
	if _, ok := s.instances[k]; ok {
		return nil, &httpError{http.StatusConflict, "alreadyExists",
			fmt.Sprintf("The resource 'projects/%s/zones/%s/instances/%s' already exists", project, zone, r.GetName())}
	}
	op := s.newOp(project, zone, "insert", r.GetName())
	if requestID != "" {
		s.requests[requestID] = project + "/" + zone + "/" + op.op.GetName()
		op.op.ClientOperationId = proto.String(requestID)
	}
	if f != nil && f.InOperation {
		op.done = func() {
			status := f.Status
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			msg := f.Message
			if msg == "" {
				msg = "injected " + f.Reason
			}
			op.op.Error = &computepb.Error{Errors: []*computepb.Errors{{Code: proto.String(f.Reason), Message: proto.String(msg)}}}
			op.op.HttpErrorStatusCode = proto.Int32(int32(status))
			op.op.HttpErrorMessage = proto.String(strings.ToUpper(http.StatusText(status)))
		}
		return op.op, nil
	}
	r = proto.Clone(r).(*computepb.Instance)
	s.fill(project, zone, r)
	r.Status = proto.String("PROVISIONING")
	s.instances[k] = &Instance{Project: project, Zone: zone, Resource: r, RequestID: requestID}
	s.order = append(s.order, k)
	op.op.TargetId = proto.Uint64(r.GetId())
	op.done = func() {
		if i, ok := s.instances[k]; ok && i.Resource.GetId() == r.GetId() {
			i.Resource.Status = proto.String("RUNNING")
		}
	}
	return op.op, nil
}

// fingerprint is the labelFingerprint of a set of labels.
func fingerprint(labels map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(h, "%q=%q;", k, labels[k])
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)[:8])
}

// setLabels replaces the labels of an instance, like Compute Engine: the
// request's labelFingerprint must be the instance's current one (else 412
// conditionNotMet), the labels must be valid; the new labels get a new
// fingerprint. The change is made at once and an operation returned.
func (s *Server) setLabels(project, zone, name string, req *computepb.InstancesSetLabelsRequest) (proto.Message, *httpError) {
	i, ok := s.instances[project+"/"+zone+"/"+name]
	if !ok {
		return nil, notFound("instances", project, zone, name)
	}
	if req.GetLabelFingerprint() != i.Resource.GetLabelFingerprint() {
		return nil, &httpError{http.StatusPreconditionFailed, "conditionNotMet",
			"Labels fingerprint either invalid or resource labels have changed"}
	}
	if len(req.GetLabels()) > 64 {
		return nil, &httpError{http.StatusBadRequest, "invalid", "Invalid value for field 'labels': too many labels"}
	}
	for k, v := range req.GetLabels() {
		if !labelKeyRe.MatchString(k) || !labelValueRe.MatchString(v) {
			return nil, &httpError{http.StatusBadRequest, "invalid", fmt.Sprintf("Invalid value for field 'labels': '%s'", k)}
		}
	}
	i.Resource.Labels = maps.Clone(req.GetLabels())
	i.Resource.LabelFingerprint = proto.String(fingerprint(i.Resource.Labels))
	op := s.newOp(project, zone, "setLabels", name)
	return op.op, nil
}

// SetLabelsDirectly changes an instance's labels behind the backend's back
// (another tool), giving it a new fingerprint.
func (s *Server) SetLabelsDirectly(project, zone, name string, labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.instances[project+"/"+zone+"/"+name]; ok {
		i.Resource.Labels = maps.Clone(labels)
		i.Resource.LabelFingerprint = proto.String(fingerprint(labels))
	}
}

func (s *Server) delete(project, zone, name, requestID string) (proto.Message, *httpError) {
	if requestID != "" {
		if k, ok := s.requests[requestID]; ok {
			return s.ops[k].op, nil
		}
	}
	k := project + "/" + zone + "/" + name
	i, ok := s.instances[k]
	if !ok {
		return nil, notFound("instances", project, zone, name)
	}
	i.Resource.Status = proto.String("STOPPING")
	op := s.newOp(project, zone, "delete", name)
	if requestID != "" {
		s.requests[requestID] = project + "/" + zone + "/" + op.op.GetName()
		op.op.ClientOperationId = proto.String(requestID)
	}
	id := i.Resource.GetId()
	op.done = func() {
		if cur, ok := s.instances[k]; ok && cur.Resource.GetId() == id {
			s.remove(k)
		}
	}
	return op.op, nil
}

// filterTermRe is one term of the filters the fake understands.
var filterTermRe = regexp.MustCompile(`^\(?\s*labels\.([a-z][a-z0-9_-]{0,62})\s*=\s*("([^"]*)"|([a-z0-9_-]*))\s*\)?$`)

// parseFilter parses `labels.K = "V"` terms joined by AND; false when it
// cannot.
func parseFilter(f string) (map[string]string, bool) {
	want := map[string]string{}
	if strings.TrimSpace(f) == "" {
		return want, true
	}
	for _, term := range strings.Split(f, " AND ") {
		m := filterTermRe.FindStringSubmatch(strings.TrimSpace(term))
		if m == nil {
			return nil, false
		}
		v := m[3]
		if m[4] != "" {
			v = m[4]
		}
		want[m[1]] = v
	}
	return want, true
}

func (s *Server) list(project, zone string, q map[string][]string) (proto.Message, *httpError) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	s.filters = append(s.filters, get("filter"))
	want, ok := parseFilter(get("filter"))
	if !ok {
		return nil, &httpError{http.StatusBadRequest, "invalid",
			fmt.Sprintf("Invalid value for field 'filter': '%s'. Invalid list filter expression.", get("filter"))}
	}
	maxResults := 500
	if m := get("maxResults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 || n > 500 {
			return nil, &httpError{http.StatusBadRequest, "invalid", "Invalid value for field 'maxResults'"}
		}
		if n > 0 {
			maxResults = n
		}
	}
	start := 0
	if tok := get("pageToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
		if err != nil || n < 0 {
			return nil, &httpError{http.StatusBadRequest, "invalid", "Invalid value for field 'pageToken'"}
		}
		start = n
	}
	resp := &computepb.InstanceList{Kind: proto.String("compute#instanceList"), Id: proto.String("projects/" + project + "/zones/" + zone + "/instances")}
	var matching []*Instance
	for _, k := range s.order {
		i := s.instances[k]
		if i.Project != project || i.Zone != zone {
			continue
		}
		ok := true
		for lk, lv := range want {
			if v, has := i.Resource.GetLabels()[lk]; !has || v != lv {
				ok = false
			}
		}
		if ok {
			matching = append(matching, i)
		}
	}
	for idx := start; idx < len(matching); idx++ {
		if len(resp.Items) == maxResults {
			resp.NextPageToken = proto.String("page-" + strconv.Itoa(idx))
			break
		}
		resp.Items = append(resp.Items, matching[idx].Resource)
	}
	return resp, nil
}

// Labels returns a copy of the labels of an instance resource.
func Labels(r *computepb.Instance) map[string]string { return maps.Clone(r.GetLabels()) }

func randHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatUint(binary.BigEndian.Uint64(b[:]), 16)
}
