package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/backendtest"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/fakes/ec2fake"
)

const manager = "rm-test"

type bundle struct {
	fake *ec2fake.Server
	spec config.AWSSpec
	logs *logbuf.Buffer
}

func testSpec(endpoint string) config.AWSSpec {
	return config.AWSSpec{
		Region:             "eu-west-1",
		AMI:                "ami-0123456789abcdef0",
		InstanceTypes:      []string{"m5.large", "m5a.large"},
		Subnets:            []string{"subnet-a", "subnet-b"},
		SecurityGroups:     []string{"sg-1", "sg-2"},
		IAMInstanceProfile: "ci-runner",
		RootVolumeSizeGB:   64,
		RootVolumeType:     "gp3",
		Tags:               map[string]string{"team": "ci", backend.LabelManager: "spoofed"},
		Endpoint:           endpoint,
	}
}

func setup(t *testing.T) *bundle {
	t.Helper()
	fake := ec2fake.New()
	t.Cleanup(fake.Close)
	return &bundle{fake: fake, spec: testSpec(fake.URL()), logs: &logbuf.Buffer{}}
}

// open returns a Backend of the bundle's spec, the SDK retrying at most
// attempts times with a millisecond backoff.
func (b *bundle) open(t *testing.T, attempts int, opts ...Option) *Backend {
	t.Helper()
	opts = append([]Option{
		WithCredentials(credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", "")),
		WithRetries(attempts, time.Millisecond),
		WithLogger(slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}, opts...)
	be, err := New(context.Background(), manager, b.spec, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
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

var jitRe = regexp.MustCompile(`(?m)^JITCONFIG='([^']*)'$`)

// jitOf reads the JIT config back from the user data of the runner's newest instance.
func jitOf(t *testing.T, fake *ec2fake.Server, name string) string {
	t.Helper()
	var ud string
	for _, i := range fake.Instances() {
		if i.Tags[backend.LabelRunner] == name {
			ud = i.UserData
		}
	}
	m := jitRe.FindStringSubmatch(ud)
	if m == nil {
		t.Fatalf("no JIT config in the user data of %s", name)
	}
	return m[1]
}

func TestSuite(t *testing.T) {
	b := setup(t)
	b.fake.RejectImage("ami-00000000000000bad")
	backendtest.Run(t, backendtest.Harness{
		// As the runtime does: Create goes to the Backend of the command's
		// instance spec, Delete and List to the group's.
		Open: func(t *testing.T) backend.Backend {
			return routed{Backend: b.open(t, 3, WithPageSize(5)), factory: NewFactory(manager,
				WithCredentials(credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", "")), WithRetries(3, time.Millisecond))}
		},
		Spec: func(t *testing.T, name string) backend.RunnerSpec {
			js, err := json.Marshal(b.spec)
			if err != nil {
				t.Fatal(err)
			}
			return backend.RunnerSpec{InstanceSpec: js, Runner: testPackage}
		},
		JITConfig: func(t *testing.T, name string) string { return jitOf(t, b.fake, name) },
		Metadata: func(t *testing.T, name string) map[string]string {
			insts := b.fake.ByTag(backend.LabelRunner, name)
			if len(insts) != 1 {
				t.Fatalf("%d live instances of %s", len(insts), name)
			}
			return insts[0].Tags
		},
		MetadataValue: TagValue,
		Foreign: func(t *testing.T) backendtest.Foreign {
			name := "foreign-" + fmt.Sprint(time.Now().UnixNano())
			inst := b.fake.Put(ec2fake.Instance{ImageID: "ami-1", InstanceType: "t3.micro", Tags: map[string]string{
				backend.LabelManager: "another-manager", backend.LabelRunner: name, backend.LabelGroup: "x",
			}})
			return backendtest.Foreign{Name: name, Exists: func(t *testing.T) bool {
				for _, i := range b.fake.Live() {
					if i.ID == inst.ID {
						return true
					}
				}
				return false
			}}
		},
		InvalidSpec: func(t *testing.T, name string) backend.RunnerSpec {
			spec := b.spec
			spec.AMI = "ami-00000000000000bad"
			js, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			return backend.RunnerSpec{InstanceSpec: js, Runner: testPackage}
		},
		Concurrency: 6,
	})
	// No instance of the manager is left behind.
	if live := b.fake.ByTag(backend.LabelManager, manager); len(live) != 0 {
		t.Errorf("%d instances left behind after the suite", len(live))
	}
}

// routed sends Create to the Backend of the runner's instance spec.
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

func TestCreateRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	be := b.open(t, 3)
	r := runner("rm-test-linux-0001")
	inst, err := be.Create(ctx(t), r)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	got := b.fake.Instances()
	if len(got) != 1 {
		t.Fatalf("%d instances, want 1", len(got))
	}
	i := got[0]
	if inst.ID != i.ID || inst.Name != r.Name || inst.Group != "linux" || inst.State != "pending" || inst.CreatedAt.IsZero() {
		t.Errorf("Create returned %+v for instance %s", inst, i.ID)
	}
	checks := []struct{ what, got, want string }{
		{"ImageId", i.ImageID, b.spec.AMI},
		{"InstanceType", i.InstanceType, "m5.large"},
		{"SubnetId", i.SubnetID, "subnet-a"},
		{"InstanceInitiatedShutdownBehavior", i.InstanceInitiatedShutdownBehavior, "terminate"},
		{"MetadataOptions.HttpTokens", i.HTTPTokens, "required"},
		{"MetadataOptions.HttpPutResponseHopLimit", i.Params.Get("MetadataOptions.HttpPutResponseHopLimit"), "1"},
		{"MetadataOptions.HttpEndpoint", i.Params.Get("MetadataOptions.HttpEndpoint"), "enabled"},
		{"IamInstanceProfile", i.IAMInstanceProfile, "ci-runner"},
		{"SecurityGroupIds", strings.Join(i.SecurityGroupIDs, ","), "sg-1,sg-2"},
		{"root volume size", i.RootVolumeSize, "64"},
		{"root volume type", i.RootVolumeType, "gp3"},
		{"root device", i.Params.Get("BlockDeviceMapping.1.DeviceName"), "/dev/xvda"},
		{"market", fmt.Sprint(i.Spot), "false"},
		{"ClientToken", i.ClientToken, ClientToken(r.Name, attempt{false, "m5.large", "subnet-a"}, "")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	wantTags := map[string]string{
		"Name": r.Name, backend.LabelManager: manager, backend.LabelGroup: "linux", backend.LabelRunner: r.Name, "team": "ci",
	}
	for what, tags := range map[string]map[string]string{"instance": i.Tags, "volume": i.VolumeTags} {
		if fmt.Sprint(tags) != fmt.Sprint(wantTags) {
			t.Errorf("%s tags = %v, want %v", what, tags, wantTags)
		}
	}
	if !strings.HasPrefix(i.UserData, "#!/bin/bash\n") {
		t.Errorf("user data is not the bootstrap script: %.40q", i.UserData)
	}
	if got := jitOf(t, b.fake, r.Name); got != r.JITConfig.Value() {
		t.Errorf("user data carries JIT config %q, want %q", got, r.JITConfig.Value())
	}
}

func TestSpot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.spec.Spot = true
	if _, err := b.open(t, 1).Create(ctx(t), runner("rm-test-linux-spot")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	i := b.fake.Instances()[0]
	if !i.Spot || i.Params.Get("InstanceMarketOptions.SpotOptions.SpotInstanceType") != "one-time" ||
		i.Params.Get("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior") != "terminate" {
		t.Errorf("not a one-time spot instance terminated on interruption: %v", i.Params)
	}
}

func TestFallbacks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		spot     bool
		fallback bool
		faults   []ec2fake.Fault
		// want is "market type subnet" of the instance, or "" for ErrCapacity.
		want string
		runs int
	}{
		{
			name:   "capacity in the first subnet: next subnet",
			faults: []ec2fake.Fault{{Subnet: "subnet-a", Code: "InsufficientInstanceCapacity"}},
			want:   "on-demand m5.large subnet-b", runs: 2,
		},
		{
			name:   "no free address in the first subnet: next subnet",
			faults: []ec2fake.Fault{{Subnet: "subnet-a", Code: "InsufficientFreeAddressesInSubnet"}},
			want:   "on-demand m5.large subnet-b", runs: 2,
		},
		{
			name:   "first instance type exhausted everywhere: next type",
			faults: []ec2fake.Fault{{InstanceType: "m5.large", Code: "InsufficientInstanceCapacity"}},
			want:   "on-demand m5a.large subnet-a", runs: 3,
		},
		{
			name: "spot exhausted, fallback allowed: on-demand", spot: true, fallback: true,
			faults: []ec2fake.Fault{{Market: "spot", Code: "InsufficientInstanceCapacity"}},
			want:   "on-demand m5.large subnet-a", runs: 5,
		},
		{
			name: "spot price too low, fallback allowed: on-demand", spot: true, fallback: true,
			faults: []ec2fake.Fault{{Market: "spot", Code: "SpotMaxPriceTooLow"}},
			want:   "on-demand m5.large subnet-a", runs: 5,
		},
		{
			name: "spot exhausted, no fallback: capacity error", spot: true,
			faults: []ec2fake.Fault{{Market: "spot", Code: "InsufficientInstanceCapacity"}},
			runs:   4,
		},
		{
			name:   "everything exhausted: capacity error",
			faults: []ec2fake.Fault{{Code: "InsufficientInstanceCapacity"}},
			runs:   4,
		},
		{
			name:   "vCPU quota: capacity error",
			faults: []ec2fake.Fault{{Code: "VcpuLimitExceeded"}},
			runs:   4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.spec.Spot, b.spec.SpotFallbackOnDemand = tt.spot, tt.fallback
			for _, f := range tt.faults {
				f.Action = "RunInstances"
				b.fake.Inject(f)
			}
			inst, err := b.open(t, 3).Create(ctx(t), runner("rm-test-linux-fb"))
			if got := b.fake.Calls("RunInstances"); got != tt.runs {
				t.Errorf("RunInstances called %d times, want %d (the SDK must not retry capacity errors)", got, tt.runs)
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
			got := b.fake.Live()
			if len(got) != 1 || got[0].ID != inst.ID {
				t.Fatalf("instances %+v, want one, %s", got, inst.ID)
			}
			market := "on-demand"
			if got[0].Spot {
				market = "spot"
			}
			if s := market + " " + got[0].InstanceType + " " + got[0].SubnetID; s != tt.want {
				t.Errorf("instance is %q, want %q", s, tt.want)
			}
			if !strings.Contains(b.logs.String(), "no capacity, trying the next choice") {
				t.Errorf("the fallback was not logged")
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault ec2fake.Fault
		image string
		want  error // nil: success
		runs  int
	}{
		{"throttled once: the SDK retries", ec2fake.Fault{Code: "RequestLimitExceeded", Times: 1}, "", nil, 2},
		{"throttled: retryable, bounded", ec2fake.Fault{Code: "RequestLimitExceeded"}, "", backend.ErrRetryable, 3},
		{"internal error: retryable", ec2fake.Fault{Code: "InternalError"}, "", backend.ErrRetryable, 3},
		{"unknown AMI: permanent", ec2fake.Fault{}, "ami-00000000000000bad", backend.ErrPermanent, 1},
		{"malformed AMI: permanent", ec2fake.Fault{}, "not-an-ami", backend.ErrPermanent, 1},
		{"invalid parameter: permanent", ec2fake.Fault{Code: "InvalidParameterValue"}, "", backend.ErrPermanent, 1},
		{"unauthorized: permanent", ec2fake.Fault{Code: "UnauthorizedOperation", Status: 403}, "", backend.ErrPermanent, 1},
		{"unknown subnet: permanent", ec2fake.Fault{Code: "InvalidSubnetID.NotFound"}, "", backend.ErrPermanent, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.fake.RejectImage("ami-00000000000000bad")
			if tt.image != "" {
				b.spec.AMI = tt.image
			}
			if tt.fault.Code != "" {
				tt.fault.Action = "RunInstances"
				b.fake.Inject(tt.fault)
			}
			r := runner("rm-test-linux-err")
			_, err := b.open(t, 3).Create(ctx(t), r)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Create: %v", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Create: %v, want %v", err, tt.want)
			}
			if got := b.fake.Calls("RunInstances"); got != tt.runs {
				t.Errorf("RunInstances called %d times, want %d", got, tt.runs)
			}
			if err != nil && strings.Contains(fmt.Sprintf("%v %+v", err, err), r.JITConfig.Value()) {
				t.Errorf("the error carries the JIT config")
			}
		})
	}
}

func TestInvalidSpec(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*config.AWSSpec){
		"no region":             func(s *config.AWSSpec) { s.Region = "" },
		"no image":              func(s *config.AWSSpec) { s.AMI = "" },
		"image and template":    func(s *config.AWSSpec) { s.LaunchTemplate = &config.LaunchTemplate{Name: "lt"} },
		"no instance type":      func(s *config.AWSSpec) { s.InstanceTypes = nil },
		"unverifiable download": func(s *config.AWSSpec) { s.Bootstrap.RunnerVersion = "2.999.0" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec := testSpec("http://127.0.0.1:1")
			mutate(&spec)
			if _, err := New(context.Background(), manager, spec); !errors.Is(err, backend.ErrPermanent) {
				t.Errorf("New: %v, want a permanent error", err)
			}
		})
	}
}

func TestLaunchTemplate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.spec.AMI, b.spec.InstanceTypes, b.spec.Subnets = "", nil, nil
	b.spec.LaunchTemplate = &config.LaunchTemplate{ID: "lt-0abc", Version: "$Latest"}
	if _, err := b.open(t, 1).Create(ctx(t), runner("rm-test-linux-lt")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	p := b.fake.Instances()[0].Params
	if p.Get("LaunchTemplate.LaunchTemplateId") != "lt-0abc" || p.Get("LaunchTemplate.Version") != "$Latest" ||
		p.Get("ImageId") != "" || p.Get("InstanceType") != "" || p.Get("SubnetId") != "" {
		t.Errorf("request %v, want the launch template alone", p)
	}
}

// A response lost after EC2 made the instance (a crash or a timeout between
// RunInstances and its return): the retry finds the instance, never a second.
func TestLostResponse(t *testing.T) {
	t.Parallel()
	lost := ec2fake.Fault{Action: "RunInstances", Code: "InternalError", Times: 1, AfterAction: true}
	t.Run("the SDK's retry reuses the client token", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.Inject(lost)
		inst, err := b.open(t, 3).Create(ctx(t), runner("rm-test-linux-lost1"))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if got := b.fake.Instances(); len(got) != 1 || got[0].ID != inst.ID || b.fake.Calls("RunInstances") != 2 {
			t.Errorf("instances %d (want 1), RunInstances calls %d (want 2)", len(got), b.fake.Calls("RunInstances"))
		}
	})
	for _, lag := range []int{0, 10} {
		t.Run(fmt.Sprintf("a new Create, a new JIT config, describe lag %d", lag), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.fake.SetDescribeLag(lag)
			b.fake.Inject(lost)
			r := runner("rm-test-linux-lost2")
			_, err := b.open(t, 1).Create(ctx(t), r)
			if !errors.Is(err, backend.ErrRetryable) {
				t.Fatalf("first Create: %v, want retryable", err)
			}
			// The provisioner crashed; another replica gets the command
			// again and asks GitHub for a new JIT config.
			r.JITConfig = "JIT-second"
			inst, err := b.open(t, 1).Create(ctx(t), r)
			if err != nil {
				t.Fatalf("second Create: %v", err)
			}
			got := b.fake.Instances()
			if len(got) != 1 || got[0].ID != inst.ID {
				t.Fatalf("%d instances, want the one of the first call", len(got))
			}
			if inst.Name != r.Name || inst.Group != r.Group {
				t.Errorf("Create returned %+v", inst)
			}
		})
	}
}

func TestDeleteAndList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	be := b.open(t, 1, WithPageSize(5))
	var names []string
	for n := range 12 {
		r := runner(fmt.Sprintf("rm-test-linux-%04d", n))
		names = append(names, r.Name)
		if _, err := be.Create(ctx(t), r); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	// Another manager's, and an untagged one.
	b.fake.Put(ec2fake.Instance{Tags: map[string]string{backend.LabelManager: "other", backend.LabelRunner: "rm-test-linux-0000"}})
	b.fake.Put(ec2fake.Instance{})
	if err := be.Delete(ctx(t), names[0]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	l, err := be.List(ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := strings.Join(backendtest.Names(l), ","), strings.Join(names[1:], ","); got != want {
		t.Errorf("List = %s, want %s", got, want)
	}
	if calls := b.fake.Calls("DescribeInstances"); calls < 3 {
		t.Errorf("DescribeInstances called %d times: List did not page", calls)
	}
	// The other manager's namesake survives; deleting again is a no-op.
	if n := len(b.fake.ByTag(backend.LabelRunner, names[0])); n != 1 {
		t.Errorf("%d live instances named %s, want the other manager's", n, names[0])
	}
	terminations := b.fake.Calls("TerminateInstances")
	if err := be.Delete(ctx(t), names[0]); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if got := b.fake.Calls("TerminateInstances"); got != terminations {
		t.Errorf("second Delete called TerminateInstances")
	}
	// An instance that vanished between describe and terminate.
	b.fake.Inject(ec2fake.Fault{Action: "TerminateInstances", Code: "InvalidInstanceID.NotFound", Times: 1})
	if err := be.Delete(ctx(t), names[1]); err != nil {
		t.Errorf("Delete of an instance that vanished: %v", err)
	}
	b.fake.Inject(ec2fake.Fault{Action: "DescribeInstances", Code: "RequestLimitExceeded"})
	if _, err := be.List(ctx(t)); !errors.Is(err, backend.ErrRetryable) {
		t.Errorf("List when throttled: %v, want retryable", err)
	}
	if err := be.Delete(ctx(t), names[2]); !errors.Is(err, backend.ErrRetryable) {
		t.Errorf("Delete when throttled: %v, want retryable", err)
	}
}

// The JIT config is in the user data and nowhere else: not in tags, other
// request parameters, the client token, Instance values, errors or logs.
func TestJITConfigOnlyInUserData(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.Inject(ec2fake.Fault{Action: "RunInstances", Subnet: "subnet-a", Code: "InsufficientInstanceCapacity"})
	be := b.open(t, 2)
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
	b.fake.Inject(ec2fake.Fault{Action: "RunInstances", Code: "InvalidParameterValue"})
	_, cerr := be.Create(ctx(t), runner("rm-test-linux-other"))
	for _, i := range b.fake.Instances() {
		params := i.Params
		params.Del("UserData")
		for where, text := range map[string]string{
			"tags":           fmt.Sprint(i.Tags, i.VolumeTags),
			"parameters":     params.Encode(),
			"client token":   i.ClientToken,
			"Create's value": fmt.Sprintf("%#v", inst),
			"List's values":  fmt.Sprintf("%#v", l),
			"errors":         fmt.Sprintf("%v %#v", cerr, cerr),
			"logs":           b.logs.String(),
		} {
			if strings.Contains(text, secret) {
				t.Errorf("the JIT config appears in the %s", where)
			}
		}
	}
	if !strings.Contains(b.logs.String(), "subnet-a") {
		t.Errorf("logs lack the fallback: %s", b.logs.String())
	}
}

func TestFactory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := NewFactory(manager, WithCredentials(credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", "")))
	js, err := json.Marshal(b.spec)
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.Backend(js)
	if err != nil {
		t.Fatalf("Backend: %v", err)
	}
	if again, _ := f.Backend(js); again != first {
		t.Errorf("the Factory built the same spec twice")
	}
	if _, err := first.Create(ctx(t), runner("rm-test-linux-f")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := f.Backend([]byte(`{"region": 1}`)); !errors.Is(err, backend.ErrPermanent) {
		t.Errorf("Backend of bad JSON: %v, want permanent", err)
	}
	none, err := f.Backend(nil)
	if err != nil {
		t.Fatalf("Backend(nil): %v", err)
	}
	if l, err := none.List(ctx(t)); err != nil || len(l) != 0 {
		t.Errorf("List without a spec = %v, %v; want nothing", l, err)
	}
	if err := none.Delete(ctx(t), "x"); !errors.Is(err, backend.ErrPermanent) {
		t.Errorf("Delete without a spec: %v, want permanent", err)
	}
}

func TestUserDataTooLarge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := runner("rm-test-linux-big")
	r.JITConfig = config.Secret(strings.Repeat("A", MaxUserData))
	_, err := b.open(t, 1).Create(ctx(t), r)
	if !errors.Is(err, backend.ErrPermanent) || strings.Contains(err.Error(), "AAAA") {
		t.Fatalf("Create: %v, want a permanent error without the JIT config", err)
	}
	if b.fake.Calls("RunInstances") != 0 {
		t.Errorf("RunInstances was called")
	}
}
