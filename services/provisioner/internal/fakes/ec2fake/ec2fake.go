// Package ec2fake is a wire-level fake of the EC2 Query API (version
// 2016-11-15) for the actions the AWS backend uses: RunInstances,
// TerminateInstances, DescribeInstances and CreateTags. The real aws-sdk-go-v2 client
// talks to it through its endpoint option (BaseEndpoint).
//
// It keeps instances in memory, honours ClientToken like EC2 (the same token
// returns the same instance, even after it terminated; the same token with
// other parameters is IdempotentParameterMismatch), keeps the user data so
// tests can read it back, and injects errors on demand (Fault).
//
// Instances move pending → running on the next DescribeInstances, and
// shutting-down → terminated on the one after a TerminateInstances; terminated
// instances stay visible, as on EC2.
package ec2fake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// APIVersion is the EC2 API version the fake speaks.
const APIVersion = "2016-11-15"

const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Instance is one instance as the fake keeps it.
type Instance struct {
	ID           string
	ImageID      string
	InstanceType string
	SubnetID     string
	State        string
	LaunchTime   time.Time
	ClientToken  string
	// Tags of the instance and of its volumes (TagSpecification).
	Tags       map[string]string
	VolumeTags map[string]string
	// UserData, decoded from base64.
	UserData string
	// Spot is true for InstanceMarketOptions.MarketType=spot.
	Spot                              bool
	InstanceInitiatedShutdownBehavior string
	// HTTPTokens of MetadataOptions ("required" for IMDSv2 only).
	HTTPTokens         string
	IAMInstanceProfile string
	SecurityGroupIDs   []string
	LaunchTemplate     string
	RootVolumeSize     string
	RootVolumeType     string
	// Params is the whole RunInstances request, for assertions.
	Params url.Values

	// hidden is the number of DescribeInstances calls that do not see the
	// instance yet (eventual consistency), except by client-token or id.
	hidden int
}

// Fault is an error the fake answers with. Empty match fields match anything.
type Fault struct {
	// Action to fail (RunInstances, DescribeInstances, TerminateInstances); "" any.
	Action string
	// Subnet, InstanceType and Market (spot or on-demand) match RunInstances parameters.
	Subnet       string
	InstanceType string
	Market       string
	// Code is the EC2 error code, e.g. InsufficientInstanceCapacity.
	Code    string
	Message string
	// Status is the HTTP status; default by code (5xx for capacity and
	// throttling, 400 otherwise).
	Status int
	// Times the fault fires; 0 for every matching call.
	Times int
	// AfterAction: the action is carried out, then the error is returned, as
	// when a response is lost (a crash between the call and its return).
	AfterAction bool
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu        sync.Mutex
	instances map[string]*Instance
	order     []string
	tokens    map[string]token
	faults    []*Fault
	badImages map[string]bool
	calls     map[string]int
	lag       int
	now       func() time.Time
}

type token struct {
	id          string
	fingerprint string
}

// New starts a fake; it stops at test cleanup when t is given to Close.
func New() *Server {
	s := &Server{
		instances: map[string]*Instance{},
		tokens:    map[string]token{},
		badImages: map[string]bool{},
		calls:     map[string]int{},
		now:       time.Now,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the endpoint to give the SDK.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Inject adds a fault.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetDescribeLag makes each new instance invisible to the next n
// DescribeInstances calls, unless they filter by client-token or
// instance-id: EC2's eventual consistency after RunInstances.
func (s *Server) SetDescribeLag(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = n
}

// RejectImage makes RunInstances answer InvalidAMIID.NotFound for the AMI.
func (s *Server) RejectImage(ami string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badImages[ami] = true
}

// Calls returns how many requests of the action the fake received.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// Instances returns copies of every instance, terminated ones included, in
// creation order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.instances[id].clone())
	}
	return out
}

// Live returns the instances that are not shutting-down or terminated.
func (s *Server) Live() []Instance {
	var out []Instance
	for _, i := range s.Instances() {
		if i.State != "shutting-down" && i.State != "terminated" {
			out = append(out, i)
		}
	}
	return out
}

// ByTag returns the live instances whose tag key has value.
func (s *Server) ByTag(key, value string) []Instance {
	var out []Instance
	for _, i := range s.Live() {
		if i.Tags[key] == value {
			out = append(out, i)
		}
	}
	return out
}

// Put adds an instance directly (a foreign one, for tests). ID and
// LaunchTime are filled in when empty; State defaults to running.
func (s *Server) Put(i Instance) Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i.ID == "" {
		i.ID = newID("i-")
	}
	if i.State == "" {
		i.State = "running"
	}
	if i.LaunchTime.IsZero() {
		i.LaunchTime = s.now().UTC()
	}
	c := i.clone()
	s.instances[c.ID] = &c
	s.order = append(s.order, c.ID)
	return c.clone()
}

func (i *Instance) clone() Instance {
	c := *i
	c.Tags = maps.Clone(i.Tags)
	c.VolumeTags = maps.Clone(i.VolumeTags)
	c.SecurityGroupIDs = slices.Clone(i.SecurityGroupIDs)
	if i.Params != nil {
		c.Params = url.Values{}
		for k, v := range i.Params {
			c.Params[k] = slices.Clone(v)
		}
	}
	return c
}

// apiError is an EC2 error response.
type apiError struct {
	status  int
	code    string
	message string
}

func defaultStatus(code string) int {
	switch code {
	case "RequestLimitExceeded", "Unavailable", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "InsufficientInstanceCapacity", "InternalError", "InsufficientAddressCapacity":
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.writeError(w, apiError{http.StatusBadRequest, "InvalidAction", "the Query API takes POST"})
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeError(w, apiError{http.StatusBadRequest, "MalformedQueryString", err.Error()})
		return
	}
	form := r.PostForm
	action := form.Get("Action")
	if v := form.Get("Version"); v != APIVersion {
		s.writeError(w, apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("unsupported API version %q", v)})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		s.writeError(w, apiError{http.StatusUnauthorized, "AuthFailure", "the request is not signed"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[action]++
	fault := s.fault(action, form)
	if fault != nil && !fault.AfterAction {
		s.writeError(w, faultError(fault))
		return
	}
	var (
		body any
		aerr *apiError
	)
	switch action {
	case "RunInstances":
		body, aerr = s.runInstances(form)
	case "DescribeInstances":
		body, aerr = s.describeInstances(form)
	case "TerminateInstances":
		body, aerr = s.terminateInstances(form)
	case "CreateTags":
		body, aerr = s.createTags(form)
	default:
		aerr = &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action)}
	}
	switch {
	case fault != nil:
		s.writeError(w, faultError(fault))
	case aerr != nil:
		s.writeError(w, *aerr)
	default:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		_, _ = w.Write([]byte(xml.Header))
		_ = xml.NewEncoder(w).Encode(body)
	}
}

func faultError(f *Fault) apiError {
	e := apiError{f.Status, f.Code, f.Message}
	if e.status == 0 {
		e.status = defaultStatus(f.Code)
	}
	if e.message == "" {
		e.message = "injected " + f.Code
	}
	return e
}

// fault returns the first matching fault and consumes one of its times.
func (s *Server) fault(action string, form url.Values) *Fault {
	market := "on-demand"
	if form.Get("InstanceMarketOptions.MarketType") == "spot" {
		market = "spot"
	}
	for i, f := range s.faults {
		if (f.Action != "" && f.Action != action) ||
			(f.Subnet != "" && f.Subnet != form.Get("SubnetId")) ||
			(f.InstanceType != "" && f.InstanceType != form.Get("InstanceType")) ||
			(f.Market != "" && (action != "RunInstances" || f.Market != market)) {
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

func (s *Server) writeError(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	type errXML struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type respXML struct {
		XMLName   xml.Name `xml:"Response"`
		Errors    []errXML `xml:"Errors>Error"`
		RequestID string   `xml:"RequestID"`
	}
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(respXML{Errors: []errXML{{e.code, e.message}}, RequestID: newUUID()})
}

// list collects Prefix.1, Prefix.2, ... (the Query protocol's flattened lists).
func list(form url.Values, prefix string) []string {
	var out []string
	for n := 1; ; n++ {
		v, ok := form[prefix+"."+strconv.Itoa(n)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func tagSpecs(form url.Values) (instance, volume map[string]string, err *apiError) {
	instance, volume = map[string]string{}, map[string]string{}
	for n := 1; ; n++ {
		p := "TagSpecification." + strconv.Itoa(n)
		rt, ok := form[p+".ResourceType"]
		if !ok {
			return instance, volume, nil
		}
		var dst map[string]string
		switch rt[0] {
		case "instance":
			dst = instance
		case "volume":
			dst = volume
		default:
			return nil, nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "unsupported resource type " + rt[0]}
		}
		for m := 1; ; m++ {
			k, ok := form[fmt.Sprintf("%s.Tag.%d.Key", p, m)]
			if !ok {
				break
			}
			dst[k[0]] = form.Get(fmt.Sprintf("%s.Tag.%d.Value", p, m))
		}
	}
}

func (s *Server) runInstances(form url.Values) (any, *apiError) {
	bad := func(code, msg string) *apiError { return &apiError{http.StatusBadRequest, code, msg} }
	if form.Get("MinCount") != "1" || form.Get("MaxCount") != "1" {
		return nil, bad("InvalidParameterValue", "the fake supports MinCount=MaxCount=1")
	}
	lt := form.Get("LaunchTemplate.LaunchTemplateId") + form.Get("LaunchTemplate.LaunchTemplateName")
	image := form.Get("ImageId")
	switch {
	case image == "" && lt == "":
		return nil, bad("MissingParameter", "The request must contain the parameter ImageId")
	case image != "" && !strings.HasPrefix(image, "ami-"):
		return nil, bad("InvalidAMIID.Malformed", fmt.Sprintf("Invalid id: %q (expecting \"ami-...\")", image))
	case s.badImages[image]:
		return nil, bad("InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", image))
	case form.Get("InstanceType") == "" && lt == "":
		return nil, bad("MissingParameter", "The request must contain the parameter InstanceType")
	}
	var userData string
	if ud := form.Get("UserData"); ud != "" {
		b, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return nil, bad("InvalidParameterValue", "Invalid BASE64 encoding of user data")
		}
		if len(b) > 16384 {
			return nil, bad("InvalidParameterValue", "User data is limited to 16384 bytes")
		}
		userData = string(b)
	}
	if b := form.Get("InstanceInitiatedShutdownBehavior"); b != "" && b != "stop" && b != "terminate" {
		return nil, bad("InvalidParameterValue", "Value ("+b+") for parameter instanceInitiatedShutdownBehavior is invalid")
	}
	tags, volTags, aerr := tagSpecs(form)
	if aerr != nil {
		return nil, aerr
	}
	// EC2 compares the parameters of a repeated client token; the fake
	// compares those that choose the machine and what it runs.
	fingerprint := strings.Join([]string{image, lt, form.Get("InstanceType"), form.Get("SubnetId"),
		form.Get("InstanceMarketOptions.MarketType"), form.Get("UserData")}, "|")
	if tok := form.Get("ClientToken"); tok != "" {
		if len(tok) > 64 {
			return nil, bad("InvalidParameterValue", "client token longer than 64 characters")
		}
		if prev, ok := s.tokens[tok]; ok {
			if prev.fingerprint != fingerprint {
				return nil, bad("IdempotentParameterMismatch", "The client token you have provided is associated with a resource that is already deleted or has different parameters.")
			}
			return runResponse(s.instances[prev.id]), nil
		}
	}
	params := url.Values{}
	for k, v := range form {
		params[k] = slices.Clone(v)
	}
	inst := &Instance{
		ID:                                newID("i-"),
		ImageID:                           cmpOr(image, "ami-fromtemplate"),
		InstanceType:                      cmpOr(form.Get("InstanceType"), "t3.micro"),
		SubnetID:                          form.Get("SubnetId"),
		State:                             "pending",
		LaunchTime:                        s.now().UTC().Truncate(time.Millisecond),
		ClientToken:                       form.Get("ClientToken"),
		Tags:                              tags,
		VolumeTags:                        volTags,
		UserData:                          userData,
		Spot:                              form.Get("InstanceMarketOptions.MarketType") == "spot",
		InstanceInitiatedShutdownBehavior: form.Get("InstanceInitiatedShutdownBehavior"),
		HTTPTokens:                        form.Get("MetadataOptions.HttpTokens"),
		IAMInstanceProfile:                form.Get("IamInstanceProfile.Name") + form.Get("IamInstanceProfile.Arn"),
		SecurityGroupIDs:                  list(form, "SecurityGroupId"),
		LaunchTemplate:                    lt,
		RootVolumeSize:                    form.Get("BlockDeviceMapping.1.Ebs.VolumeSize"),
		RootVolumeType:                    form.Get("BlockDeviceMapping.1.Ebs.VolumeType"),
		Params:                            params,
		hidden:                            s.lag,
	}
	s.instances[inst.ID] = inst
	s.order = append(s.order, inst.ID)
	if inst.ClientToken != "" {
		s.tokens[inst.ClientToken] = token{inst.ID, fingerprint}
	}
	return runResponse(inst), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// XML of the responses, in the EC2 namespace.

type stateXML struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type instanceXML struct {
	InstanceID        string   `xml:"instanceId"`
	ImageID           string   `xml:"imageId"`
	State             stateXML `xml:"instanceState"`
	InstanceType      string   `xml:"instanceType"`
	LaunchTime        string   `xml:"launchTime"`
	SubnetID          string   `xml:"subnetId,omitempty"`
	ClientToken       string   `xml:"clientToken,omitempty"`
	InstanceLifecycle string   `xml:"instanceLifecycle,omitempty"`
	Tags              []tagXML `xml:"tagSet>item"`
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func toXML(i *Instance) instanceXML {
	x := instanceXML{
		InstanceID:   i.ID,
		ImageID:      i.ImageID,
		State:        stateXML{stateCodes[i.State], i.State},
		InstanceType: i.InstanceType,
		LaunchTime:   i.LaunchTime.Format("2006-01-02T15:04:05.000Z"),
		SubnetID:     i.SubnetID,
		ClientToken:  i.ClientToken,
	}
	if i.Spot {
		x.InstanceLifecycle = "spot"
	}
	for _, k := range slices.Sorted(maps.Keys(i.Tags)) {
		x.Tags = append(x.Tags, tagXML{k, i.Tags[k]})
	}
	return x
}

type runXML struct {
	XMLName       xml.Name      `xml:"RunInstancesResponse"`
	Xmlns         string        `xml:"xmlns,attr"`
	RequestID     string        `xml:"requestId"`
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

func runResponse(i *Instance) runXML {
	return runXML{Xmlns: xmlns, RequestID: newUUID(), ReservationID: "r-" + strings.TrimPrefix(i.ID, "i-"),
		OwnerID: "123456789012", Instances: []instanceXML{toXML(i)}}
}

type reservationXML struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

type describeXML struct {
	XMLName      xml.Name         `xml:"DescribeInstancesResponse"`
	Xmlns        string           `xml:"xmlns,attr"`
	RequestID    string           `xml:"requestId"`
	Reservations []reservationXML `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type filter struct {
	name   string
	values []string
}

func (f filter) match(i *Instance) bool {
	var v string
	var has bool
	switch {
	case strings.HasPrefix(f.name, "tag:"):
		v, has = i.Tags[strings.TrimPrefix(f.name, "tag:")]
	case f.name == "tag-key":
		for _, want := range f.values {
			if _, ok := i.Tags[want]; ok {
				return true
			}
		}
		return false
	case f.name == "instance-state-name":
		v, has = i.State, true
	case f.name == "client-token":
		v, has = i.ClientToken, true
	case f.name == "instance-id":
		v, has = i.ID, true
	case f.name == "subnet-id":
		v, has = i.SubnetID, true
	}
	return has && slices.Contains(f.values, v)
}

var knownFilters = []string{"tag-key", "instance-state-name", "client-token", "instance-id", "subnet-id"}

func (s *Server) describeInstances(form url.Values) (any, *apiError) {
	var filters []filter
	for n := 1; ; n++ {
		p := "Filter." + strconv.Itoa(n)
		name, ok := form[p+".Name"]
		if !ok {
			break
		}
		if !strings.HasPrefix(name[0], "tag:") && !slices.Contains(knownFilters, name[0]) {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", name[0])}
		}
		values := list(form, p+".Value")
		if len(values) == 0 {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "filter " + name[0] + " has no value"}
		}
		filters = append(filters, filter{name[0], values})
	}
	ids := list(form, "InstanceId")
	max := 0
	if m := form.Get("MaxResults"); m != "" {
		if len(ids) > 0 {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterCombination", "MaxResults cannot be combined with InstanceId"}
		}
		var err error
		if max, err = strconv.Atoi(m); err != nil || max < 5 || max > 1000 {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "MaxResults must be between 5 and 1000"}
		}
	}
	for _, id := range ids {
		if _, ok := s.instances[id]; !ok {
			return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
		}
	}
	start := 0
	if tok := form.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
		if err != nil || n < 0 || n > len(s.order) {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "invalid NextToken"}
		}
		start = n
	}
	// State moves: what was pending is running, what was shutting down is
	// gone. Hidden instances are counted down after the answer.
	for _, i := range s.instances {
		switch i.State {
		case "pending":
			i.State = "running"
		case "shutting-down":
			i.State = "terminated"
		}
	}
	exact := len(ids) > 0
	for _, f := range filters {
		exact = exact || f.name == "client-token" || f.name == "instance-id"
	}
	resp := describeXML{Xmlns: xmlns, RequestID: newUUID()}
	n := 0
	for idx := start; idx < len(s.order); idx++ {
		i := s.instances[s.order[idx]]
		if len(ids) > 0 && !slices.Contains(ids, i.ID) {
			continue
		}
		if !allMatch(filters, i) || (i.hidden > 0 && !exact) {
			continue
		}
		if max > 0 && n == max {
			resp.NextToken = "page-" + strconv.Itoa(idx)
			break
		}
		resp.Reservations = append(resp.Reservations, reservationXML{
			ReservationID: "r-" + strings.TrimPrefix(i.ID, "i-"), OwnerID: "123456789012",
			Instances: []instanceXML{toXML(i)},
		})
		n++
	}
	for _, i := range s.instances {
		if i.hidden > 0 {
			i.hidden--
		}
	}
	return resp, nil
}

func allMatch(fs []filter, i *Instance) bool {
	for _, f := range fs {
		if !f.match(i) {
			return false
		}
	}
	return true
}

type changeXML struct {
	InstanceID    string   `xml:"instanceId"`
	CurrentState  stateXML `xml:"currentState"`
	PreviousState stateXML `xml:"previousState"`
}

type terminateXML struct {
	XMLName   xml.Name    `xml:"TerminateInstancesResponse"`
	Xmlns     string      `xml:"xmlns,attr"`
	RequestID string      `xml:"requestId"`
	Changes   []changeXML `xml:"instancesSet>item"`
}

func (s *Server) terminateInstances(form url.Values) (any, *apiError) {
	ids := list(form, "InstanceId")
	if len(ids) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId"}
	}
	for _, id := range ids {
		if _, ok := s.instances[id]; !ok {
			return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
		}
	}
	resp := terminateXML{Xmlns: xmlns, RequestID: newUUID()}
	for _, id := range ids {
		i := s.instances[id]
		prev := i.State
		if i.State != "terminated" {
			i.State = "shutting-down"
		}
		resp.Changes = append(resp.Changes, changeXML{id, stateXML{stateCodes[i.State], i.State}, stateXML{stateCodes[prev], prev}})
	}
	return resp, nil
}

// Limits of EC2 tags.
const (
	MaxTagKey       = 128
	MaxTagValue     = 256
	MaxTagsPerRes   = 50
	reservedTagKeys = "aws:"
)

type createTagsXML struct {
	XMLName   xml.Name `xml:"CreateTagsResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	RequestID string   `xml:"requestId"`
	Return    bool     `xml:"return"`
}

// createTags adds or overwrites tags of instances (ResourceId.N, Tag.N.Key,
// Tag.N.Value), checked like EC2: every resource must exist, keys of 1 to
// 128 characters not starting with aws:, values of at most 256, at most 50
// tags per resource. Nothing changes unless every check passes.
func (s *Server) createTags(form url.Values) (any, *apiError) {
	ids := list(form, "ResourceId")
	if len(ids) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter resourceIdSet"}
	}
	tags := map[string]string{}
	for n := 1; ; n++ {
		k, ok := form[fmt.Sprintf("Tag.%d.Key", n)]
		if !ok {
			break
		}
		key, value := k[0], form.Get(fmt.Sprintf("Tag.%d.Value", n))
		switch {
		case key == "" || utf8.RuneCountInString(key) > MaxTagKey:
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Tag key exceeds the maximum length of %d characters", MaxTagKey)}
		case strings.HasPrefix(strings.ToLower(key), reservedTagKeys):
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use"}
		case utf8.RuneCountInString(value) > MaxTagValue:
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Tag value exceeds the maximum length of %d characters", MaxTagValue)}
		}
		tags[key] = value
	}
	if len(tags) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter tagSet"}
	}
	for _, id := range ids {
		i, ok := s.instances[id]
		if !ok {
			return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
		}
		merged := maps.Clone(i.Tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if len(merged) > MaxTagsPerRes {
			return nil, &apiError{http.StatusBadRequest, "TagLimitExceeded", fmt.Sprintf("The maximum number of Tags for a resource has been reached (%d)", MaxTagsPerRes)}
		}
	}
	for _, id := range ids {
		i := s.instances[id]
		if i.Tags == nil {
			i.Tags = map[string]string{}
		}
		maps.Copy(i.Tags, tags)
	}
	return createTagsXML{Xmlns: xmlns, RequestID: newUUID(), Return: true}, nil
}

func newID(prefix string) string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)[:17]
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
