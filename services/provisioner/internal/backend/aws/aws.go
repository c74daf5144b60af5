// Package aws is the EC2 backend of provisioner-aws: one runner is one EC2
// instance, started with RunInstances from the group's config.AWSSpec, tagged
// with the manager's ownership tags, bootstrapped by the user data script of
// package bootstrap (which carries the JIT configuration), and terminated by
// TerminateInstances (or by itself: it powers off when its runner exits and
// InstanceInitiatedShutdownBehavior is terminate).
//
// A Backend serves one group specification (its region, subnets, instance
// types, image...); a Factory returns the Backend of a specification's JSON,
// as carried by the provisioning commands. See docs/cloud-backends.md.
package aws

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/backend/bootstrap"
)

// TagName is the EC2 console's name tag; it holds the runner name.
const TagName = "Name"

// MaxUserData is EC2's limit of the user data, before base64.
const MaxUserData = 16 << 10

// Defaults of the options.
const (
	DefaultMaxAttempts = 3
	DefaultMaxBackoff  = 5 * time.Second
	DefaultPageSize    = 1000
)

// liveStates are the states of an instance that exists or will run;
// shutting-down and terminated instances are gone as far as the manager is
// concerned (they stop billing on their own).
var liveStates = []string{"pending", "running", "stopping", "stopped"}

type options struct {
	log         *slog.Logger
	creds       aws.CredentialsProvider
	httpClient  *http.Client
	maxAttempts int
	maxBackoff  time.Duration
	pageSize    int32
}

// Option configures a Backend.
type Option func(*options)

// WithLogger logs fallbacks and deletions (never the JIT configuration).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithCredentials replaces the default credential chain (environment, shared
// files, instance role...), e.g. with credentials.NewStaticCredentialsProvider
// against a fake.
func WithCredentials(p aws.CredentialsProvider) Option { return func(o *options) { o.creds = p } }

// WithHTTPClient sets the HTTP client of the SDK.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithRetries bounds the SDK's own retries of one call (throttling, 5xx):
// attempts in all, and the longest backoff between two.
func WithRetries(maxAttempts int, maxBackoff time.Duration) Option {
	return func(o *options) { o.maxAttempts, o.maxBackoff = maxAttempts, maxBackoff }
}

// WithPageSize sets MaxResults of DescribeInstances (5 to 1000).
func WithPageSize(n int32) Option { return func(o *options) { o.pageSize = n } }

// API is the part of the EC2 client the backend uses.
type API interface {
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, opts ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, opts ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, opts ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// Backend is the backend.Backend of one AWSSpec.
type Backend struct {
	manager  string
	spec     config.AWSSpec
	script   *bootstrap.Script
	client   API
	log      *slog.Logger
	pageSize int32
}

var _ backend.Backend = (*Backend)(nil)

// New returns the Backend of spec for the manager name. It checks the spec
// (an invalid one is backend.ErrPermanent) and builds the EC2 client: the
// default credential chain, the spec's region, its endpoint when set.
func New(ctx context.Context, manager string, spec config.AWSSpec, opts ...Option) (*Backend, error) {
	o := options{maxAttempts: DefaultMaxAttempts, maxBackoff: DefaultMaxBackoff, pageSize: DefaultPageSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, err := checkSpec(manager, spec); err != nil {
		return nil, err
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(spec.Region),
		// The SDK never logs: a request body holds the user data.
		awsconfig.WithLogger(logging.Nop{}),
		awsconfig.WithClientLogMode(0),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.maxAttempts
				so.MaxBackoff = o.maxBackoff
				// Capacity and permanent errors are answered by a fallback or
				// by the scheduler, not by the SDK retrying the same call.
				so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
					if code := apiCode(err); code != "" && classOf(code, 0) != backend.ErrRetryable {
						return aws.FalseTernary
					}
					return aws.UnknownTernary
				})}, so.Retryables...)
			})
		}),
	}
	if o.creds != nil {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(o.creds))
	}
	if o.httpClient != nil {
		loadOpts = append(loadOpts, awsconfig.WithHTTPClient(o.httpClient))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	client := ec2.NewFromConfig(cfg, func(eo *ec2.Options) {
		if spec.Endpoint != "" {
			eo.BaseEndpoint = aws.String(spec.Endpoint)
		}
	})
	return NewWithClient(manager, spec, client, opts...)
}

// NewWithClient is New with an EC2 client of the caller's.
func NewWithClient(manager string, spec config.AWSSpec, client API, opts ...Option) (*Backend, error) {
	o := options{pageSize: DefaultPageSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	script, err := checkSpec(manager, spec)
	if err != nil {
		return nil, err
	}
	return &Backend{manager: manager, spec: spec, script: script, client: client, log: o.log, pageSize: o.pageSize}, nil
}

func checkSpec(manager string, spec config.AWSSpec) (*bootstrap.Script, error) {
	var problems []string
	if manager == "" {
		problems = append(problems, "empty manager name")
	}
	if spec.Region == "" {
		problems = append(problems, "region is required")
	}
	lt := spec.LaunchTemplate != nil && (spec.LaunchTemplate.ID != "" || spec.LaunchTemplate.Name != "")
	switch {
	case spec.AMI == "" && !lt:
		problems = append(problems, "one of ami or launch_template is required")
	case spec.AMI != "" && lt:
		problems = append(problems, "ami and launch_template are exclusive")
	}
	if len(spec.InstanceTypes) == 0 && !lt {
		problems = append(problems, "instance_types is required without a launch_template")
	}
	script, err := bootstrap.NewArch(spec.Bootstrap, spec.Architecture)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("aws backend spec: %s: %w", strings.Join(problems, "; "), backend.ErrPermanent)
	}
	return script, nil
}

// attempt is one (market, instance type, subnet) combination of a create.
type attempt struct {
	spot         bool
	instanceType string
	subnet       string
}

func (a attempt) market() string {
	if a.spot {
		return "spot"
	}
	return "on-demand"
}

// attempts lists the combinations in order: for each market (spot, then
// on-demand when allowed), each instance type, each subnet.
func (b *Backend) attempts() []attempt {
	markets := []bool{false}
	if b.spec.Spot {
		markets = []bool{true}
		if b.spec.SpotFallbackOnDemand {
			markets = append(markets, false)
		}
	}
	types := b.spec.InstanceTypes
	if len(types) == 0 {
		types = []string{""} // the launch template's
	}
	subnets := b.spec.Subnets
	if len(subnets) == 0 {
		subnets = []string{""} // the default VPC's, or the launch template's
	}
	var out []attempt
	for _, spot := range markets {
		for _, t := range types {
			for _, s := range subnets {
				out = append(out, attempt{spot, t, s})
			}
		}
	}
	return out
}

// ClientToken is the idempotency token of one attempt: a hash of the runner
// name and of the combination, so a retry of the same attempt matches and a
// fallback differs; previous is the id of a terminated instance that an
// earlier incarnation of the name left behind with the same token.
func ClientToken(name string, a attempt, previous string) string {
	h := sha256.Sum256([]byte(strings.Join([]string{name, a.market(), a.instanceType, a.subnet, previous}, "\x00")))
	return "rm-" + hex.EncodeToString(h[:20])
}

// Create starts the runner's instance, or returns the one that exists.
func (b *Backend) Create(ctx context.Context, r backend.RunnerSpec) (backend.Instance, error) {
	if err := backend.CheckRunnerName(r.Name); err != nil {
		return backend.Instance{}, fmt.Errorf("create instance: %w", err)
	}
	if inst, ok, err := b.find(ctx, r.Name); err != nil {
		return backend.Instance{}, fmt.Errorf("create instance %s: %w", r.Name, err)
	} else if ok {
		return inst, nil
	}
	script, err := b.script.Render(bootstrap.Vars{Cloud: bootstrap.AWS, Runner: r.Runner, RunnerName: r.Name, Group: r.Group, JITConfig: r.JITConfig})
	if err != nil {
		return backend.Instance{}, fmt.Errorf("create instance %s: %w: %w", r.Name, err, backend.ErrPermanent)
	}
	if len(script) > MaxUserData {
		return backend.Instance{}, fmt.Errorf("create instance %s: the startup script is %d bytes, over EC2's %d: %w",
			r.Name, len(script), MaxUserData, backend.ErrPermanent)
	}
	userData := base64.StdEncoding.EncodeToString([]byte(script))
	var capacity error
	for _, a := range b.attempts() {
		inst, err := b.run(ctx, r, userData, a)
		if err == nil {
			return inst, nil
		}
		if !errors.Is(err, backend.ErrCapacity) {
			return backend.Instance{}, fmt.Errorf("create instance %s: %w", r.Name, err)
		}
		capacity = err
		b.log.WarnContext(ctx, "no capacity, trying the next choice",
			"runner", r.Name, "market", a.market(), "instance_type", a.instanceType, "subnet", a.subnet, "error", err)
	}
	return backend.Instance{}, fmt.Errorf("create instance %s: every subnet, instance type and market: %w", r.Name, capacity)
}

// run makes one attempt. It returns the instance of the attempt's client
// token: a new one, or the one an earlier call (whose answer was lost) made.
func (b *Backend) run(ctx context.Context, r backend.RunnerSpec, userData string, a attempt) (backend.Instance, error) {
	previous := ""
	for range 3 {
		token := ClientToken(r.Name, a, previous)
		out, err := b.client.RunInstances(ctx, b.input(r, userData, a, token))
		var inst types.Instance
		switch {
		case err != nil && apiCode(err) == "IdempotentParameterMismatch":
			// The token made an instance with other parameters (another JIT
			// configuration): that instance is this runner's.
			found, ok, ferr := b.byToken(ctx, token)
			if ferr != nil {
				return backend.Instance{}, ferr
			}
			if !ok {
				return backend.Instance{}, fmt.Errorf("run instance: client token in use but no instance found: %w", backend.ErrRetryable)
			}
			inst = found
		case err != nil:
			return backend.Instance{}, classify(fmt.Sprintf("run instance (%s, %s, %s)", a.market(), a.instanceType, a.subnet), err)
		case len(out.Instances) != 1:
			return backend.Instance{}, fmt.Errorf("run instance: %d instances in the answer: %w", len(out.Instances), backend.ErrRetryable)
		default:
			inst = out.Instances[0]
		}
		if state := stateOf(inst); state == "shutting-down" || state == "terminated" {
			previous = aws.ToString(inst.InstanceId)
			continue
		}
		got := b.instance(inst)
		if got.Name == "" { // answered without tags: the token is ours
			got.Name, got.Group = r.Name, r.Group
		}
		b.log.InfoContext(ctx, "instance created", "runner", r.Name, "instance_id", got.ID,
			"market", a.market(), "instance_type", a.instanceType, "subnet", a.subnet)
		return got, nil
	}
	return backend.Instance{}, fmt.Errorf("run instance: client tokens keep naming terminated instances: %w", backend.ErrRetryable)
}

func (b *Backend) tags(r backend.RunnerSpec) []types.Tag {
	m := maps.Clone(b.spec.Tags)
	if m == nil {
		m = map[string]string{}
	}
	m[TagName] = r.Name
	m[backend.LabelManager] = b.manager
	m[backend.LabelGroup] = r.Group
	m[backend.LabelRunner] = r.Name
	tags := make([]types.Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

func (b *Backend) input(r backend.RunnerSpec, userData string, a attempt, token string) *ec2.RunInstancesInput {
	tags := b.tags(r)
	in := &ec2.RunInstancesInput{
		MinCount:                          aws.Int32(1),
		MaxCount:                          aws.Int32(1),
		ClientToken:                       aws.String(token),
		UserData:                          aws.String(userData),
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		// IMDSv2 only, and a hop limit of 1: the token's response does not
		// survive one more hop, so a container on the instance (a job's
		// docker run) gets no token and no instance credentials.
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:              types.HttpTokensStateRequired,
			HttpEndpoint:            types.InstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: aws.Int32(1),
		},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
	}
	if b.spec.AMI != "" {
		in.ImageId = aws.String(b.spec.AMI)
	}
	if lt := b.spec.LaunchTemplate; lt != nil && (lt.ID != "" || lt.Name != "") {
		in.LaunchTemplate = &types.LaunchTemplateSpecification{}
		if lt.ID != "" {
			in.LaunchTemplate.LaunchTemplateId = aws.String(lt.ID)
		} else {
			in.LaunchTemplate.LaunchTemplateName = aws.String(lt.Name)
		}
		if lt.Version != "" {
			in.LaunchTemplate.Version = aws.String(lt.Version)
		}
	}
	if a.instanceType != "" {
		in.InstanceType = types.InstanceType(a.instanceType)
	}
	if a.subnet != "" {
		in.SubnetId = aws.String(a.subnet)
	}
	if len(b.spec.SecurityGroups) > 0 {
		in.SecurityGroupIds = b.spec.SecurityGroups
	}
	if p := b.spec.IAMInstanceProfile; p != "" {
		if strings.HasPrefix(p, "arn:") {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String(p)}
		} else {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(p)}
		}
	}
	if b.spec.RootVolumeSizeGB > 0 || b.spec.RootVolumeType != "" {
		ebs := &types.EbsBlockDevice{DeleteOnTermination: aws.Bool(true)}
		if b.spec.RootVolumeSizeGB > 0 {
			ebs.VolumeSize = aws.Int32(b.spec.RootVolumeSizeGB)
		}
		if b.spec.RootVolumeType != "" {
			ebs.VolumeType = types.VolumeType(b.spec.RootVolumeType)
		}
		// The root device of the usual Linux AMIs (Amazon Linux, Ubuntu, Debian).
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String(b.rootDevice()), Ebs: ebs}}
	}
	if a.spot {
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{
			MarketType: types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{
				SpotInstanceType:             types.SpotInstanceTypeOneTime,
				InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate,
			},
		}
	}
	return in
}

func (b *Backend) rootDevice() string {
	if b.spec.RootDeviceName != "" {
		return b.spec.RootDeviceName
	}
	return DefaultRootDeviceName
}

// DefaultRootDeviceName is the root device of the common Linux AMIs.
const DefaultRootDeviceName = "/dev/xvda"

// Delete terminates the runner's instances (there is at most one, but a
// lost answer could in theory leave two); none is success.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := backend.CheckRunnerName(name); err != nil {
		return fmt.Errorf("delete instance: %w", err)
	}
	insts, err := b.describe(ctx, []types.Filter{
		tagFilter(backend.LabelManager, b.manager),
		tagFilter(backend.LabelRunner, name),
		{Name: aws.String("instance-state-name"), Values: liveStates},
	})
	if err != nil {
		return fmt.Errorf("delete instance %s: %w", name, err)
	}
	if len(insts) == 0 {
		return nil
	}
	ids := make([]string, len(insts))
	for i, inst := range insts {
		ids[i] = aws.ToString(inst.InstanceId)
	}
	_, err = b.client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err != nil && apiCode(err) != "InvalidInstanceID.NotFound" {
		return fmt.Errorf("delete instance %s: %w", name, classify("terminate instances", err))
	}
	b.log.InfoContext(ctx, "instance terminated", "runner", name, "instance_ids", ids)
	return nil
}

// MaxTagValue is EC2's limit of a tag value, in Unicode characters.
const MaxTagValue = 256

// TagValue makes s a tag value EC2 and AWS Cost Explorer take: letters,
// digits, spaces and + - = . _ : / @ (anything else becomes '_'), at most
// MaxTagValue characters.
func TagValue(s string) string {
	var sb strings.Builder
	n := 0
	for _, r := range s {
		if n == MaxTagValue {
			break
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || strings.ContainsRune("+-=._:/@", r) {
			sb.WriteRune(r)
		} else {
			sb.WriteRune('_')
		}
		n++
	}
	return sb.String()
}

// UpdateRunner tags the runner's live instance with the job's metadata
// (backend.Meta* keys; CreateTags overwrites a tag of the same key, so a
// second call with the same metadata changes nothing). No live instance is
// a permanent error.
func (b *Backend) UpdateRunner(ctx context.Context, name string, md backend.RunnerMetadata) error {
	if err := backend.CheckRunnerName(name); err != nil {
		return fmt.Errorf("update instance: %w", err)
	}
	inst, ok, err := b.find(ctx, name)
	if err != nil {
		return fmt.Errorf("update instance %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("update instance %s: no live instance: %w", name, backend.ErrPermanent)
	}
	values := md.Values()
	tags := make([]types.Tag, 0, len(values))
	for _, k := range slices.Sorted(maps.Keys(values)) {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(TagValue(values[k]))})
	}
	if _, err := b.client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{inst.ID}, Tags: tags}); err != nil {
		return fmt.Errorf("update instance %s: %w", name, classify("create tags", err))
	}
	return nil
}

// List returns the manager's instances in the spec's region that are not
// shutting down or terminated.
func (b *Backend) List(ctx context.Context) ([]backend.Instance, error) {
	insts, err := b.describe(ctx, []types.Filter{
		tagFilter(backend.LabelManager, b.manager),
		{Name: aws.String("instance-state-name"), Values: liveStates},
	})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	out := make([]backend.Instance, 0, len(insts))
	for _, i := range insts {
		out = append(out, b.instance(i))
	}
	return out, nil
}

// find returns the live instance of the runner name, if any.
func (b *Backend) find(ctx context.Context, name string) (backend.Instance, bool, error) {
	insts, err := b.describe(ctx, []types.Filter{
		tagFilter(backend.LabelManager, b.manager),
		tagFilter(backend.LabelRunner, name),
		{Name: aws.String("instance-state-name"), Values: liveStates},
	})
	if err != nil || len(insts) == 0 {
		return backend.Instance{}, false, err
	}
	return b.instance(insts[0]), true, nil
}

func (b *Backend) byToken(ctx context.Context, token string) (types.Instance, bool, error) {
	insts, err := b.describe(ctx, []types.Filter{{Name: aws.String("client-token"), Values: []string{token}}})
	if err != nil || len(insts) == 0 {
		return types.Instance{}, false, err
	}
	return insts[0], true, nil
}

// describe returns every instance matching filters, over all pages.
func (b *Backend) describe(ctx context.Context, filters []types.Filter) ([]types.Instance, error) {
	p := ec2.NewDescribeInstancesPaginator(b.client, &ec2.DescribeInstancesInput{Filters: filters, MaxResults: aws.Int32(b.pageSize)})
	var out []types.Instance
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("describe instances", err)
		}
		for _, res := range page.Reservations {
			out = append(out, res.Instances...)
		}
	}
	return out, nil
}

func tagFilter(key, value string) types.Filter {
	return types.Filter{Name: aws.String("tag:" + key), Values: []string{value}}
}

func stateOf(i types.Instance) string {
	if i.State == nil {
		return ""
	}
	return string(i.State.Name)
}

func (b *Backend) instance(i types.Instance) backend.Instance {
	out := backend.Instance{ID: aws.ToString(i.InstanceId), State: stateOf(i), CreatedAt: aws.ToTime(i.LaunchTime)}
	for _, t := range i.Tags {
		switch aws.ToString(t.Key) {
		case backend.LabelRunner:
			out.Name = aws.ToString(t.Value)
		case backend.LabelGroup:
			out.Group = aws.ToString(t.Value)
		}
	}
	return out
}

// Error classification of EC2 error codes.
var (
	capacityCodes = []string{
		"InsufficientInstanceCapacity", "InsufficientFreeAddressesInSubnet", "InsufficientAddressCapacity",
		"InsufficientCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
		"InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow",
		"Unsupported", "InsufficientCapacityOnOutpost",
	}
	retryableCodes = []string{
		"RequestLimitExceeded", "Throttling", "ThrottlingException", "InternalError", "InternalFailure",
		"ServiceUnavailable", "Unavailable", "RequestTimeout", "RequestExpired",
	}
	permanentPrefixes = []string{"Invalid", "Unauthorized", "AuthFailure", "MissingParameter", "OptInRequired",
		"Blocked", "UnsupportedOperation", "UnknownParameter", "InvalidParameter", "IdempotentParameterMismatch"}
)

// classOf maps an EC2 error code (and the HTTP status, 0 when unknown) to a
// backend error class.
func classOf(code string, status int) error {
	switch {
	case slices.Contains(capacityCodes, code):
		return backend.ErrCapacity
	case slices.Contains(retryableCodes, code):
		return backend.ErrRetryable
	}
	for _, p := range permanentPrefixes {
		if strings.HasPrefix(code, p) {
			return backend.ErrPermanent
		}
	}
	if status >= 400 && status < 500 {
		return backend.ErrPermanent
	}
	return backend.ErrRetryable
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// classify wraps err, from the call what, with its class.
func classify(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", what, backend.ErrRetryable, err)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s: %w: %w", what, backend.ErrRetryable, err)
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return fmt.Errorf("%s: %s: %s: %w", what, ae.ErrorCode(), ae.ErrorMessage(), classOf(ae.ErrorCode(), status))
}
