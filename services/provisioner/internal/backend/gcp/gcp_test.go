package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/backendtest"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/fakes/gcefake"
)

const (
	manager = "rm-test"
	project = "ci-project"
)

type bundle struct {
	fake *gcefake.Server
	spec config.GCPSpec
	logs *logbuf.Buffer
}

func testSpec(endpoint string) config.GCPSpec {
	return config.GCPSpec{
		Project:        project,
		Zones:          []string{"europe-west1-b", "europe-west1-c"},
		MachineType:    "e2-standard-4",
		ImageFamily:    "ubuntu-2404-lts-amd64",
		ImageProject:   "ubuntu-os-cloud",
		DiskSizeGB:     100,
		DiskType:       "pd-balanced",
		Subnetwork:     "runners",
		ServiceAccount: "runner@ci-project.iam.gserviceaccount.com",
		Labels:         map[string]string{"team": "ci", LabelManager: "spoofed"},
		Endpoint:       endpoint,
	}
}

func setup(t *testing.T) *bundle {
	t.Helper()
	fake := gcefake.New()
	t.Cleanup(fake.Close)
	return &bundle{fake: fake, spec: testSpec(fake.URL()), logs: &logbuf.Buffer{}}
}

func clientOpts() Option {
	return WithClientOptions(option.WithoutAuthentication(), option.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}))
}

func (b *bundle) open(t *testing.T, opts ...Option) *Backend {
	t.Helper()
	opts = append([]Option{clientOpts(),
		WithLogger(slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	be, err := New(context.Background(), manager, b.spec, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// testPackage is the runner package the runtime resolves from GitHub's
// downloads API for a bootstrap that pins no version.
var testPackage = &backend.RunnerPackage{
	Version: "2.330.0",
	URL:     "https://github.com/actions/runner/releases/download/v2.330.0/actions-runner-linux-x64-2.330.0.tar.gz",
	SHA256:  "3f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a",
}

func runner(name string) backend.RunnerSpec {
	return backend.RunnerSpec{Name: name, Group: "linux", JITConfig: config.Secret("JIT-" + name + "-c2VjcmV0"), Runner: testPackage}
}

// routed sends Create to the Backend of the runner's instance spec, as the runtime does.
type routed struct {
	*Backend
	factory *Factory
}

func (r routed) Create(ctx context.Context, spec backend.RunnerSpec) (backend.Instance, error) {
	b, err := r.factory.Backend(spec.InstanceSpec)
	if err != nil {
		return backend.Instance{}, err
	}
	return b.Create(ctx, spec)
}

func TestSuite(t *testing.T) {
	b := setup(t)
	b.fake.RejectImage("projects/ci-project/global/images/missing")
	factory := NewFactory(manager, clientOpts())
	t.Cleanup(func() { _ = factory.Close() })
	specJSON := func(t *testing.T, s config.GCPSpec) []byte {
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backend.Backend {
			return routed{Backend: b.open(t, WithPageSize(3)), factory: factory}
		},
		Spec: func(t *testing.T, name string) backend.RunnerSpec {
			return backend.RunnerSpec{InstanceSpec: specJSON(t, b.spec), Runner: testPackage}
		},
		JITConfig: func(t *testing.T, name string) string {
			for _, i := range b.fake.ByLabel(LabelRunner, name) {
				if v, ok := i.Metadata(MetadataJITConfig); ok {
					return v
				}
			}
			t.Fatalf("no instance %s with a JIT config", name)
			return ""
		},
		Metadata: func(t *testing.T, name string) map[string]string {
			insts := b.fake.ByLabel(LabelRunner, name)
			if len(insts) != 1 {
				t.Fatalf("%d instances of %s", len(insts), name)
			}
			return insts[0].Resource.GetLabels()
		},
		MetadataValue: LabelValue,
		Foreign: func(t *testing.T) backendtest.Foreign {
			name := fmt.Sprintf("foreign-%d", time.Now().UnixNano())
			b.fake.Put(project, b.spec.Zones[0], &computepb.Instance{Name: proto.String(name), Labels: map[string]string{
				LabelManager: "another-manager", LabelRunner: name,
			}})
			return backendtest.Foreign{Name: name, Exists: func(t *testing.T) bool {
				for _, i := range b.fake.Instances() {
					if i.Resource.GetName() == name {
						return true
					}
				}
				return false
			}}
		},
		InvalidSpec: func(t *testing.T, name string) backend.RunnerSpec {
			s := b.spec
			s.ImageFamily, s.ImageProject, s.Image = "", "", "missing"
			return backend.RunnerSpec{InstanceSpec: specJSON(t, s), Runner: testPackage}
		},
	})
	if left := b.fake.ByLabel(LabelManager, manager); len(left) != 0 {
		t.Errorf("%d instances left behind after the suite", len(left))
	}
	for _, f := range b.fake.Filters() {
		if f != `labels.runner-manager-manager = "rm-test"` {
			t.Errorf("list filter %q", f)
		}
	}
}

func TestInsertRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.spec.NestedVirtualization = true
	b.spec.ExternalIP = true
	r := runner("rm-test-linux-0001")
	inst, err := b.open(t).Create(ctx(t), r)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	got := b.fake.Instances()
	if len(got) != 1 {
		t.Fatalf("%d instances, want 1", len(got))
	}
	i := got[0].Resource
	if inst.ID != "europe-west1-b/"+r.Name || inst.Name != r.Name || inst.Group != "linux" || inst.State != "running" || inst.CreatedAt.IsZero() {
		t.Errorf("Create returned %+v", inst)
	}
	want := &computepb.Instance{
		Name:        proto.String(r.Name),
		MachineType: proto.String("zones/europe-west1-b/machineTypes/e2-standard-4"),
		Labels:      map[string]string{LabelManager: manager, LabelGroup: "linux", LabelRunner: r.Name, "team": "ci"},
		Disks: []*computepb.AttachedDisk{{
			Boot: proto.Bool(true), AutoDelete: proto.Bool(true), Type: proto.String("PERSISTENT"),
			InitializeParams: &computepb.AttachedDiskInitializeParams{
				SourceImage: proto.String("projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"),
				DiskSizeGb:  proto.Int64(100), DiskType: proto.String("zones/europe-west1-b/diskTypes/pd-balanced"),
				Labels: map[string]string{LabelManager: manager, LabelGroup: "linux", LabelRunner: r.Name, "team": "ci"},
			},
		}},
		NetworkInterfaces: []*computepb.NetworkInterface{{
			Subnetwork:    proto.String("regions/europe-west1/subnetworks/runners"),
			AccessConfigs: []*computepb.AccessConfig{{Name: proto.String("External NAT"), Type: proto.String("ONE_TO_ONE_NAT")}},
		}},
		ServiceAccounts: []*computepb.ServiceAccount{{Email: proto.String(b.spec.ServiceAccount), Scopes: []string{
			"https://www.googleapis.com/auth/logging.write", "https://www.googleapis.com/auth/monitoring.write",
		}}},
		Scheduling:              &computepb.Scheduling{AutomaticRestart: proto.Bool(false), OnHostMaintenance: proto.String("MIGRATE")},
		AdvancedMachineFeatures: &computepb.AdvancedMachineFeatures{EnableNestedVirtualization: proto.Bool(true)},
	}
	// Compare what the backend sent, without what the fake filled in.
	sent := proto.Clone(i).(*computepb.Instance)
	sent.Id, sent.Zone, sent.SelfLink, sent.CreationTimestamp, sent.Kind, sent.Status, sent.Metadata, sent.LabelFingerprint = nil, nil, nil, nil, nil, nil, nil, nil
	if !proto.Equal(sent, want) {
		t.Errorf("inserted\n%s\nwant\n%s", protojson.Format(sent), protojson.Format(want))
	}
	if v, _ := got[0].Metadata(MetadataJITConfig); v != r.JITConfig.Value() {
		t.Errorf("metadata %s = %q, want the JIT config", MetadataJITConfig, v)
	}
	script, _ := got[0].Metadata(MetadataStartupScript)
	if !strings.HasPrefix(script, "#!/bin/bash\n") || !strings.Contains(script, "JIT_METADATA_KEY='"+MetadataJITConfig+"'\n") {
		t.Errorf("startup-script is not the bootstrap script reading %s", MetadataJITConfig)
	}
	if got[0].RequestID != RequestID(r.Name, "europe-west1-b", "STANDARD", "") {
		t.Errorf("requestId = %q", got[0].RequestID)
	}
}

// The service account's scopes are the group's, or only logging.write and
// monitoring.write: never cloud-platform unless the group says so. Without
// a service account the instance has none.
func TestServiceAccountScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		account string
		scopes  []string
		want    []*computepb.ServiceAccount
	}{
		{"none", "", nil, nil},
		{"default scopes", "sa@p.iam.gserviceaccount.com", nil, []*computepb.ServiceAccount{{
			Email:  proto.String("sa@p.iam.gserviceaccount.com"),
			Scopes: []string{"https://www.googleapis.com/auth/logging.write", "https://www.googleapis.com/auth/monitoring.write"},
		}}},
		{"explicit", "sa@p.iam.gserviceaccount.com", []string{"https://www.googleapis.com/auth/cloud-platform"}, []*computepb.ServiceAccount{{
			Email: proto.String("sa@p.iam.gserviceaccount.com"), Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.spec.ServiceAccount, b.spec.Scopes = tt.account, tt.scopes
			if _, err := b.open(t).Create(ctx(t), runner("rm-test-linux-0001")); err != nil {
				t.Fatalf("Create: %v", err)
			}
			got := b.fake.Instances()[0].Resource.GetServiceAccounts()
			if len(got) != len(tt.want) {
				t.Fatalf("service accounts %v, want %v", got, tt.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("service account %v, want %v", got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSpot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.spec.Spot = true
	if _, err := b.open(t).Create(ctx(t), runner("rm-test-linux-spot")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	s := b.fake.Instances()[0].Resource.GetScheduling()
	if s.GetProvisioningModel() != "SPOT" || s.GetInstanceTerminationAction() != "DELETE" || s.GetAutomaticRestart() {
		t.Errorf("scheduling %v, want a spot VM deleted on preemption", s)
	}
}

func TestFallbacks(t *testing.T) {
	t.Parallel()
	exhausted := gcefake.Fault{Method: "insert", InOperation: true, Reason: "ZONE_RESOURCE_POOL_EXHAUSTED", Status: 503}
	tests := []struct {
		name     string
		spot     bool
		fallback bool
		faults   []gcefake.Fault
		want     string // "zone model", "" for ErrCapacity
		inserts  int
	}{
		{name: "zone exhausted (operation): next zone", faults: []gcefake.Fault{withZone(exhausted, "europe-west1-b")},
			want: "europe-west1-c STANDARD", inserts: 2},
		{name: "zone exhausted with details: next zone", faults: []gcefake.Fault{{Method: "insert", Zone: "europe-west1-b", InOperation: true, Reason: "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", Status: 503}},
			want: "europe-west1-c STANDARD", inserts: 2},
		{name: "quota exceeded (operation): next zone", faults: []gcefake.Fault{{Method: "insert", Zone: "europe-west1-b", InOperation: true, Reason: "QUOTA_EXCEEDED", Status: 403}},
			want: "europe-west1-c STANDARD", inserts: 2},
		{name: "quota exceeded (HTTP 403): next zone", faults: []gcefake.Fault{{Method: "insert", Zone: "europe-west1-b", Reason: "quotaExceeded", Status: 403}},
			want: "europe-west1-c STANDARD", inserts: 2},
		{name: "spot exhausted everywhere, fallback: standard", spot: true, fallback: true,
			faults: []gcefake.Fault{{Method: "insert", Provisioning: "SPOT", InOperation: true, Reason: "ZONE_RESOURCE_POOL_EXHAUSTED", Status: 503}},
			want:   "europe-west1-b STANDARD", inserts: 3},
		{name: "spot exhausted, no fallback: capacity error", spot: true,
			faults:  []gcefake.Fault{{Method: "insert", Provisioning: "SPOT", InOperation: true, Reason: "ZONE_RESOURCE_POOL_EXHAUSTED", Status: 503}},
			inserts: 2},
		{name: "everything exhausted: capacity error", faults: []gcefake.Fault{exhausted}, inserts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.spec.Spot, b.spec.SpotFallbackStandard = tt.spot, tt.fallback
			for _, f := range tt.faults {
				b.fake.Inject(f)
			}
			inst, err := b.open(t).Create(ctx(t), runner("rm-test-linux-fb"))
			if got := b.fake.Calls("insert"); got != tt.inserts {
				t.Errorf("%d inserts, want %d", got, tt.inserts)
			}
			if tt.want == "" {
				if !errors.Is(err, backend.ErrCapacity) {
					t.Fatalf("Create: %v, want a capacity error", err)
				}
				if n := len(b.fake.Instances()); n != 0 {
					t.Errorf("%d instances after a failed Create", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			got := b.fake.Instances()
			if len(got) != 1 || inst.ID != got[0].Zone+"/"+inst.Name {
				t.Fatalf("instances %d, Create returned %+v", len(got), inst)
			}
			model := cmpOr(got[0].Resource.GetScheduling().GetProvisioningModel(), "STANDARD")
			if s := got[0].Zone + " " + model; s != tt.want {
				t.Errorf("instance in %q, want %q", s, tt.want)
			}
			if !strings.Contains(b.logs.String(), "no capacity, trying the next choice") {
				t.Errorf("the fallback was not logged")
			}
		})
	}
}

func withZone(f gcefake.Fault, zone string) gcefake.Fault {
	f.Zone = zone
	return f
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault gcefake.Fault
		image string
		want  error
	}{
		{"rate limited (429): retryable", gcefake.Fault{Method: "insert", Status: 429, Reason: "rateLimitExceeded"}, "", backend.ErrRetryable},
		{"rate limited (403): retryable", gcefake.Fault{Method: "insert", Status: 403, Reason: "userRateLimitExceeded"}, "", backend.ErrRetryable},
		{"server error: retryable", gcefake.Fault{Method: "insert", Status: 503, Reason: "backendError"}, "", backend.ErrRetryable},
		{"unknown image (404): permanent", gcefake.Fault{}, "projects/ci-project/global/images/missing", backend.ErrPermanent},
		{"forbidden (403): permanent", gcefake.Fault{Method: "insert", Status: 403, Reason: "forbidden"}, "", backend.ErrPermanent},
		{"bad network (400): permanent", gcefake.Fault{Method: "insert", Status: 400, Reason: "invalid"}, "", backend.ErrPermanent},
		{"operation failed, not found: permanent", gcefake.Fault{Method: "insert", InOperation: true, Status: 404, Reason: "RESOURCE_NOT_FOUND"}, "", backend.ErrPermanent},
		{"lookup failed: retryable", gcefake.Fault{Method: "get", Status: 500}, "", backend.ErrRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.fake.RejectImage("projects/ci-project/global/images/missing")
			if tt.image != "" {
				b.spec.ImageFamily, b.spec.ImageProject, b.spec.Image = "", "", tt.image
			}
			if tt.fault.Status != 0 {
				b.fake.Inject(tt.fault)
			}
			r := runner("rm-test-linux-err")
			_, err := b.open(t).Create(ctx(t), r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Create: %v, want %v", err, tt.want)
			}
			if calls := b.fake.Calls("insert"); tt.fault.Method == "insert" && calls != 1 {
				t.Errorf("%d inserts, want 1 (no fallback on a non-capacity error)", calls)
			}
			if strings.Contains(fmt.Sprintf("%v %+v", err, err), r.JITConfig.Value()) {
				t.Errorf("the error carries the JIT config")
			}
		})
	}
}

func TestInvalidSpec(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*config.GCPSpec){
		"no project":            func(s *config.GCPSpec) { s.Project = "" },
		"no zone":               func(s *config.GCPSpec) { s.Zones = nil },
		"no machine type":       func(s *config.GCPSpec) { s.MachineType = "" },
		"no image":              func(s *config.GCPSpec) { s.ImageFamily = "" },
		"image and family":      func(s *config.GCPSpec) { s.Image = "x" },
		"unverifiable download": func(s *config.GCPSpec) { s.Bootstrap.RunnerDownloadURL = "https://x/{version}" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec := testSpec("http://127.0.0.1:1")
			mutate(&spec)
			if _, err := New(context.Background(), manager, spec, clientOpts()); !errors.Is(err, backend.ErrPermanent) {
				t.Errorf("New: %v, want a permanent error", err)
			}
		})
	}
	b := setup(t)
	if _, err := b.open(t).Create(ctx(t), runner("Not_A_Name")); !errors.Is(err, backend.ErrPermanent) {
		t.Errorf("Create with an invalid name: %v, want permanent", err)
	}
}

func TestLostResponse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The insert is carried out, its answer lost.
	b.fake.Inject(gcefake.Fault{Method: "insert", Status: 503, AfterAction: true, Times: 1})
	// The lookups of both Creates (two zones each) see nothing: the retry
	// depends on the request id alone.
	b.fake.Inject(gcefake.Fault{Method: "get", Status: 404, Reason: "notFound", Times: 4})
	r := runner("rm-test-linux-lost")
	if _, err := b.open(t).Create(ctx(t), r); !errors.Is(err, backend.ErrRetryable) {
		t.Fatalf("first Create: %v, want retryable", err)
	}
	r.JITConfig = "JIT-second"
	inst, err := b.open(t).Create(ctx(t), r)
	if err != nil {
		t.Fatalf("second Create: %v", err)
	}
	got := b.fake.Instances()
	if len(got) != 1 || inst.ID != got[0].Zone+"/"+r.Name {
		t.Fatalf("%d instances, Create returned %+v; want the first one", len(got), inst)
	}
	if b.fake.Calls("insert") != 2 {
		t.Errorf("%d inserts, want 2 (the same request id twice)", b.fake.Calls("insert"))
	}
}

func TestSlowOperationTimesOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.spec.OperationTimeout = 50 * time.Millisecond
	b.fake.SetOperationPolls(1 << 30)
	if _, err := b.open(t).Create(ctx(t), runner("rm-test-linux-slow")); !errors.Is(err, backend.ErrRetryable) {
		t.Fatalf("Create: %v, want retryable after the operation timeout", err)
	}
	// The retry (the operation finished meanwhile) finds the instance.
	b.fake.SetOperationPolls(1)
	if _, err := b.open(t).Create(ctx(t), runner("rm-test-linux-slow")); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := len(b.fake.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
}

func TestDeleteAndList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	be := b.open(t, WithPageSize(2))
	var names []string
	for n := range 7 {
		r := runner(fmt.Sprintf("rm-test-linux-%04d", n))
		names = append(names, r.Name)
		if n%2 == 1 { // some in the second zone
			b.fake.Inject(gcefake.Fault{Method: "insert", Zone: "europe-west1-b", InOperation: true, Reason: "ZONE_RESOURCE_POOL_EXHAUSTED", Times: 1})
		}
		if _, err := be.Create(ctx(t), r); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	b.fake.Put(project, "europe-west1-c", &computepb.Instance{Name: proto.String("unlabelled")})
	b.fake.Put(project, "europe-west1-b", &computepb.Instance{Name: proto.String("other"), Labels: map[string]string{LabelManager: "other"}})
	if err := be.Delete(ctx(t), names[1]); err != nil { // in the second zone
		t.Fatalf("Delete: %v", err)
	}
	l, err := be.List(ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := append([]string{names[0]}, names[2:]...)
	if got := strings.Join(backendtest.Names(l), ","); got != strings.Join(want, ",") {
		t.Errorf("List = %s, want %s", got, strings.Join(want, ","))
	}
	for _, i := range l {
		if i.Name == names[3] && i.ID != "europe-west1-c/"+names[3] {
			t.Errorf("%s has ID %s, want it in europe-west1-c", i.Name, i.ID)
		}
	}
	// Zone b holds 4 of them (2 pages of 2), zone c 2 (1 page).
	if n := b.fake.Calls("list"); n != 3 {
		t.Errorf("%d list calls, want 3: List did not page through both zones", n)
	}
	if err := be.Delete(ctx(t), names[1]); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := be.Delete(ctx(t), "other"); err != nil {
		t.Errorf("Delete of another manager's instance: %v", err)
	}
	if len(b.fake.ByLabel(LabelManager, "other")) != 1 {
		t.Errorf("Delete removed another manager's instance")
	}
	b.fake.Inject(gcefake.Fault{Method: "list", Status: 503})
	if _, err := be.List(ctx(t)); !errors.Is(err, backend.ErrRetryable) {
		t.Errorf("List on a 503: %v, want retryable", err)
	}
}

// The JIT config is in its metadata key and nowhere else.
func TestJITConfigOnlyInMetadata(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.Inject(gcefake.Fault{Method: "insert", Zone: "europe-west1-b", InOperation: true, Reason: "ZONE_RESOURCE_POOL_EXHAUSTED", Status: 503})
	be := b.open(t)
	r := runner("rm-test-linux-secret")
	secret := r.JITConfig.Value()
	inst, err := be.Create(ctx(t), r)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	l, err := be.List(ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	b.fake.Inject(gcefake.Fault{Method: "insert", Status: 400, Reason: "invalid"})
	_, cerr := be.Create(ctx(t), runner("rm-test-linux-other"))
	for _, i := range b.fake.Instances() {
		res := proto.Clone(i.Resource).(*computepb.Instance)
		for _, it := range res.GetMetadata().GetItems() {
			if it.GetKey() == MetadataJITConfig {
				it.Value = proto.String("")
			}
		}
		for where, text := range map[string]string{
			"resource besides its key": protojson.Format(res),
			"request id":               i.RequestID,
			"Create's value":           fmt.Sprintf("%#v", inst),
			"List's values":            fmt.Sprintf("%#v", l),
			"errors":                   fmt.Sprintf("%v %#v", cerr, cerr),
			"logs":                     b.logs.String(),
		} {
			if strings.Contains(text, secret) {
				t.Errorf("the JIT config appears in the %s", where)
			}
		}
	}
}

func TestLabelValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"rm-linux-abc":          "rm-linux-abc",
		"My.Group/x":            "my_group_x",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := LabelValue(in); got != want {
			t.Errorf("LabelValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// setLabels takes the label fingerprint: a stale one (412, the labels
// changed meanwhile) is read again and retried once; a second 412 is a
// permanent failure.
func TestUpdateRunnerRetriesAStaleFingerprintOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	be := b.open(t)
	name := "rm-test-labels"
	spec := backend.RunnerSpec{Name: name, Group: "g", Runner: testPackage}
	if _, err := be.Create(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	md := backendtest.Metadata(5)
	b.fake.Inject(gcefake.Fault{Method: "setLabels", Status: http.StatusPreconditionFailed, Reason: "conditionNotMet", Times: 1})
	if err := be.UpdateRunner(context.Background(), name, md); err != nil {
		t.Fatalf("UpdateRunner after one stale fingerprint: %v", err)
	}
	if got := b.fake.Calls("setLabels"); got != 2 {
		t.Errorf("setLabels calls = %d, want 2", got)
	}
	labels := b.fake.ByLabel(LabelRunner, name)[0].Resource.GetLabels()
	if labels[backend.MetaJobID] != "5" || labels[LabelManager] != LabelValue(manager) {
		t.Errorf("labels after UpdateRunner: %v", labels)
	}
	// Labels changed by another tool: the fingerprint the backend reads is the new one.
	zone := b.spec.Zones[0]
	for _, i := range b.fake.ByLabel(LabelRunner, name) {
		zone = i.Zone
	}
	changed := maps.Clone(labels)
	changed["team"] = "ci"
	b.fake.SetLabelsDirectly(project, zone, name, changed)
	if err := be.UpdateRunner(context.Background(), name, backendtest.Metadata(6)); err != nil {
		t.Fatalf("UpdateRunner after a label change: %v", err)
	}
	labels = b.fake.ByLabel(LabelRunner, name)[0].Resource.GetLabels()
	if labels["team"] != "ci" || labels[backend.MetaJobID] != "6" {
		t.Errorf("labels: %v, want team kept and job 6", labels)
	}
	b.fake.Inject(gcefake.Fault{Method: "setLabels", Status: http.StatusPreconditionFailed, Reason: "conditionNotMet", Times: 2})
	err := be.UpdateRunner(context.Background(), name, backendtest.Metadata(7))
	if !errors.Is(err, backend.ErrPermanent) {
		t.Errorf("UpdateRunner after two stale fingerprints: %v, want a permanent error", err)
	}
}
