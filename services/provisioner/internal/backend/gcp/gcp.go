// Package gcp is the Compute Engine backend of provisioner-gcp: one runner is
// one instance named after the runner, inserted from the group's
// config.GCPSpec in the first zone with capacity, labelled with the manager's
// ownership labels, and bootstrapped by the startup script of package
// bootstrap, which reads the JIT configuration from a metadata key.
//
// A Backend serves one group specification (its project, zones, machine
// type, image...); a Factory returns the Backend of a specification's JSON,
// as carried by the provisioning commands. See docs/cloud-backends.md.
package gcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/google/uuid"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/backend/bootstrap"
)

// Ownership labels on Compute Engine. Label keys may not hold '/' or '.', so
// backend.LabelManager ("runner-manager.io/manager") and its siblings are
// mapped to these.
const (
	LabelManager = "runner-manager-manager"
	LabelGroup   = "runner-manager-group"
	LabelRunner  = "runner-manager-runner"
)

// Metadata keys of the instances.
const (
	// MetadataStartupScript is run by the guest environment at boot.
	MetadataStartupScript = "startup-script"
	// MetadataJITConfig holds the JIT configuration; the startup script reads it.
	MetadataJITConfig = "runner-jitconfig"
)

// Defaults.
const (
	DefaultOperationTimeout = 3 * time.Minute
	DefaultPageSize         = 500
)

// DefaultScopes are the scopes of a service account whose group sets none:
// the runner's own logs and metrics, nothing else. A group that wants more
// (cloud-platform, then IAM decides) says so in scopes; OIDC is the better
// way for jobs to reach the cloud (docs/security.md).
var DefaultScopes = []string{
	"https://www.googleapis.com/auth/logging.write",
	"https://www.googleapis.com/auth/monitoring.write",
}

// requestNamespace is the UUID v5 namespace of the request ids.
var requestNamespace = uuid.MustParse("6f1c7f7e-8f5e-4b7e-9a55-2f1d7b0c9e41")

type options struct {
	log        *slog.Logger
	clientOpts []option.ClientOption
	pageSize   uint32
}

// Option configures a Backend.
type Option func(*options)

// WithLogger logs fallbacks and deletions (never the JIT configuration).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClientOptions adds options of the Compute Engine clients, e.g.
// option.WithoutAuthentication() against a fake.
func WithClientOptions(opts ...option.ClientOption) Option {
	return func(o *options) { o.clientOpts = append(o.clientOpts, opts...) }
}

// WithPageSize sets maxResults of instances.list (1 to 500).
func WithPageSize(n uint32) Option { return func(o *options) { o.pageSize = n } }

// Backend is the backend.Backend of one GCPSpec.
type Backend struct {
	manager   string
	spec      config.GCPSpec
	script    *bootstrap.Script
	instances *compute.InstancesClient
	ops       *compute.ZoneOperationsClient
	log       *slog.Logger
	pageSize  uint32
	opTimeout time.Duration
}

var _ backend.Backend = (*Backend)(nil)

// New returns the Backend of spec for the manager name. It checks the spec
// (an invalid one is backend.ErrPermanent) and builds the REST clients with
// the application default credentials, or the spec's endpoint and opts.
func New(ctx context.Context, manager string, spec config.GCPSpec, opts ...Option) (*Backend, error) {
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
	// The client logs request bodies at debug level when
	// GOOGLE_SDK_GO_LOGGING_LEVEL says so; a body holds the JIT config.
	clientOpts := []option.ClientOption{option.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if spec.Endpoint != "" {
		clientOpts = append(clientOpts, option.WithEndpoint(spec.Endpoint))
	}
	clientOpts = append(clientOpts, o.clientOpts...)
	ic, err := compute.NewInstancesRESTClient(ctx, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("compute instances client: %w", err)
	}
	oc, err := compute.NewZoneOperationsRESTClient(ctx, clientOpts...)
	if err != nil {
		_ = ic.Close()
		return nil, fmt.Errorf("compute zone operations client: %w", err)
	}
	return &Backend{
		manager: manager, spec: spec, script: script, instances: ic, ops: oc, log: o.log,
		pageSize: o.pageSize, opTimeout: cmpOr(spec.OperationTimeout, DefaultOperationTimeout),
	}, nil
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// Close closes the API clients.
func (b *Backend) Close() error {
	return errors.Join(b.instances.Close(), b.ops.Close())
}

func checkSpec(manager string, spec config.GCPSpec) (*bootstrap.Script, error) {
	var problems []string
	if manager == "" {
		problems = append(problems, "empty manager name")
	}
	if spec.Project == "" {
		problems = append(problems, "project is required")
	}
	if len(spec.Zones) == 0 {
		problems = append(problems, "zones is required")
	}
	if spec.MachineType == "" {
		problems = append(problems, "machine_type is required")
	}
	switch {
	case spec.Image == "" && spec.ImageFamily == "":
		problems = append(problems, "one of image or image_family is required")
	case spec.Image != "" && spec.ImageFamily != "":
		problems = append(problems, "image and image_family are exclusive")
	}
	script, err := bootstrap.NewArch(spec.Bootstrap, spec.Architecture)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("gcp backend spec: %s: %w", strings.Join(problems, "; "), backend.ErrPermanent)
	}
	return script, nil
}

// LabelValue makes s a valid label value: lowercase, [a-z0-9_-], at most 63
// characters. Manager, group and runner names are already valid.
func LabelValue(s string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			sb.WriteRune(r)
		default:
			sb.WriteRune('_')
		}
	}
	out := sb.String()
	if len(out) > 63 {
		out = out[:63]
	}
	return out
}

// RequestID is the idempotency key of one insert: a UUID v5 of the runner
// name, the zone and the provisioning model, so a retry of the same attempt
// matches and a fallback differs; previous names the operation of an
// earlier incarnation of the name that the same id returned.
func RequestID(name, zone, model, previous string) string {
	return uuid.NewSHA1(requestNamespace, []byte(strings.Join([]string{name, zone, model, previous}, "\x00"))).String()
}

// Create inserts the runner's instance, or returns the one that exists.
func (b *Backend) Create(ctx context.Context, r backend.RunnerSpec) (backend.Instance, error) {
	if err := backend.CheckRunnerName(r.Name); err != nil {
		return backend.Instance{}, fmt.Errorf("create instance: %w", err)
	}
	if inst, ok, err := b.find(ctx, r.Name); err != nil {
		return backend.Instance{}, fmt.Errorf("create instance %s: %w", r.Name, err)
	} else if ok {
		return inst, nil
	}
	script, err := b.script.Render(bootstrap.Vars{Cloud: bootstrap.GCP, Runner: r.Runner, RunnerName: r.Name, Group: r.Group, JITConfigMetadataKey: MetadataJITConfig})
	if err != nil {
		return backend.Instance{}, fmt.Errorf("create instance %s: %w: %w", r.Name, err, backend.ErrPermanent)
	}
	models := []string{"STANDARD"}
	if b.spec.Spot {
		models = []string{"SPOT"}
		if b.spec.SpotFallbackStandard {
			models = append(models, "STANDARD")
		}
	}
	var capacity error
	for _, model := range models {
		for _, zone := range b.spec.Zones {
			inst, err := b.insert(ctx, r, script, zone, model)
			if err == nil {
				return inst, nil
			}
			if !errors.Is(err, backend.ErrCapacity) {
				return backend.Instance{}, fmt.Errorf("create instance %s: %w", r.Name, err)
			}
			capacity = err
			b.log.WarnContext(ctx, "no capacity, trying the next choice", "runner", r.Name, "zone", zone, "provisioning", model, "error", err)
		}
	}
	return backend.Instance{}, fmt.Errorf("create instance %s: every zone and provisioning model: %w", r.Name, capacity)
}

// insert makes one attempt in one zone and waits for its operation.
func (b *Backend) insert(ctx context.Context, r backend.RunnerSpec, script, zone, model string) (backend.Instance, error) {
	previous := ""
	for range 3 {
		reqID := RequestID(r.Name, zone, model, previous)
		op, err := b.instances.Insert(ctx, &computepb.InsertInstanceRequest{
			Project: b.spec.Project, Zone: zone, RequestId: proto.String(reqID),
			InstanceResource: b.resource(r, script, zone, model),
		})
		if err != nil {
			if code(err) == http.StatusConflict {
				// The name exists in this zone: a create that raced this one.
				return b.get(ctx, r.Name, zone, true)
			}
			return backend.Instance{}, classify(fmt.Sprintf("insert in %s (%s)", zone, model), err)
		}
		done, err := b.wait(ctx, zone, op.Proto())
		if err != nil {
			return backend.Instance{}, fmt.Errorf("insert in %s (%s): %w", zone, model, err)
		}
		if err := opError(done); err != nil {
			return backend.Instance{}, fmt.Errorf("insert in %s (%s): %w", zone, model, err)
		}
		inst, err := b.get(ctx, r.Name, zone, false)
		if err == nil {
			b.log.InfoContext(ctx, "instance created", "runner", r.Name, "zone", zone, "provisioning", model)
			return inst, nil
		}
		if !errors.Is(err, errNotFound) {
			return backend.Instance{}, err
		}
		// The request id answered with the operation of an instance of the
		// same name that is gone: derive the next id from that operation.
		previous = done.GetName()
	}
	return backend.Instance{}, fmt.Errorf("insert in %s: request ids keep naming deleted instances: %w", zone, backend.ErrRetryable)
}

func (b *Backend) labels(r backend.RunnerSpec) map[string]string {
	l := maps.Clone(b.spec.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[LabelManager] = LabelValue(b.manager)
	l[LabelGroup] = LabelValue(r.Group)
	l[LabelRunner] = LabelValue(r.Name)
	return l
}

func (b *Backend) image() string {
	switch {
	case strings.Contains(b.spec.Image, "/"):
		return b.spec.Image
	case b.spec.Image != "":
		return "projects/" + b.spec.Project + "/global/images/" + b.spec.Image
	default:
		return "projects/" + cmpOr(b.spec.ImageProject, b.spec.Project) + "/global/images/family/" + b.spec.ImageFamily
	}
}

// region of a zone: europe-west1-b → europe-west1.
func region(zone string) string {
	if i := strings.LastIndex(zone, "-"); i > 0 {
		return zone[:i]
	}
	return zone
}

func (b *Backend) resource(r backend.RunnerSpec, script, zone, model string) *computepb.Instance {
	labels := b.labels(r)
	disk := &computepb.AttachedDiskInitializeParams{SourceImage: proto.String(b.image()), Labels: labels}
	if b.spec.DiskSizeGB > 0 {
		disk.DiskSizeGb = proto.Int64(b.spec.DiskSizeGB)
	}
	if b.spec.DiskType != "" {
		disk.DiskType = proto.String("zones/" + zone + "/diskTypes/" + b.spec.DiskType)
	}
	nic := &computepb.NetworkInterface{}
	switch {
	case strings.Contains(b.spec.Network, "/"):
		nic.Network = proto.String(b.spec.Network)
	case b.spec.Network != "":
		nic.Network = proto.String("global/networks/" + b.spec.Network)
	case b.spec.Subnetwork == "":
		nic.Network = proto.String("global/networks/default")
	}
	switch {
	case strings.Contains(b.spec.Subnetwork, "/"):
		nic.Subnetwork = proto.String(b.spec.Subnetwork)
	case b.spec.Subnetwork != "":
		nic.Subnetwork = proto.String("regions/" + region(zone) + "/subnetworks/" + b.spec.Subnetwork)
	}
	if b.spec.ExternalIP {
		nic.AccessConfigs = []*computepb.AccessConfig{{Name: proto.String("External NAT"), Type: proto.String("ONE_TO_ONE_NAT")}}
	}
	inst := &computepb.Instance{
		Name:        proto.String(r.Name),
		MachineType: proto.String("zones/" + zone + "/machineTypes/" + b.spec.MachineType),
		Labels:      labels,
		Metadata: &computepb.Metadata{Items: []*computepb.Items{
			{Key: proto.String(MetadataStartupScript), Value: proto.String(script)},
			{Key: proto.String(MetadataJITConfig), Value: proto.String(r.JITConfig.Value())},
		}},
		Disks: []*computepb.AttachedDisk{{
			Boot: proto.Bool(true), AutoDelete: proto.Bool(true), Type: proto.String("PERSISTENT"),
			InitializeParams: disk,
		}},
		NetworkInterfaces: []*computepb.NetworkInterface{nic},
		// A runner is never restarted: its JIT configuration is single-use.
		Scheduling: &computepb.Scheduling{AutomaticRestart: proto.Bool(false), OnHostMaintenance: proto.String("MIGRATE")},
	}
	if model == "SPOT" {
		inst.Scheduling = &computepb.Scheduling{
			ProvisioningModel: proto.String("SPOT"), InstanceTerminationAction: proto.String("DELETE"),
			AutomaticRestart: proto.Bool(false), OnHostMaintenance: proto.String("TERMINATE"),
		}
	}
	if b.spec.ServiceAccount != "" {
		scopes := b.spec.Scopes
		if len(scopes) == 0 {
			scopes = slices.Clone(DefaultScopes)
		}
		inst.ServiceAccounts = []*computepb.ServiceAccount{{Email: proto.String(b.spec.ServiceAccount), Scopes: scopes}}
	}
	if b.spec.NestedVirtualization {
		inst.AdvancedMachineFeatures = &computepb.AdvancedMachineFeatures{EnableNestedVirtualization: proto.Bool(true)}
	}
	return inst
}

// wait waits for a zone operation to be DONE, within the operation timeout.
func (b *Backend) wait(ctx context.Context, zone string, op *computepb.Operation) (*computepb.Operation, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opTimeout)
	defer cancel()
	for op.GetStatus() != computepb.Operation_DONE {
		next, err := b.ops.Wait(ctx, &computepb.WaitZoneOperationRequest{Project: b.spec.Project, Zone: zone, Operation: op.GetName()})
		if err != nil {
			return nil, classify("wait for operation "+op.GetName(), err)
		}
		op = next
	}
	return op, nil
}

var errNotFound = errors.New("not found")

// get returns the instance name in zone; mustBeOurs makes an instance of
// another manager (or of none) a permanent error.
func (b *Backend) get(ctx context.Context, name, zone string, mustBeOurs bool) (backend.Instance, error) {
	inst, err := b.instances.Get(ctx, &computepb.GetInstanceRequest{Project: b.spec.Project, Zone: zone, Instance: name})
	if err != nil {
		if code(err) == http.StatusNotFound {
			return backend.Instance{}, fmt.Errorf("instance %s in %s: %w", name, zone, errNotFound)
		}
		return backend.Instance{}, classify("get instance "+name, err)
	}
	if mustBeOurs && inst.GetLabels()[LabelManager] != LabelValue(b.manager) {
		return backend.Instance{}, fmt.Errorf("instance %s in %s exists and is not this manager's: %w", name, zone, backend.ErrPermanent)
	}
	return b.instance(zone, inst), nil
}

// find looks for the runner's instance in every zone of the spec.
func (b *Backend) find(ctx context.Context, name string) (backend.Instance, bool, error) {
	for _, zone := range b.spec.Zones {
		inst, err := b.get(ctx, name, zone, true)
		switch {
		case err == nil:
			return inst, true, nil
		case !errors.Is(err, errNotFound):
			return backend.Instance{}, false, err
		}
	}
	return backend.Instance{}, false, nil
}

// Delete deletes the runner's instance in whichever zone of the spec it is,
// and waits for the deletion. Not found, or an instance of another manager
// (left alone), is success.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := backend.CheckRunnerName(name); err != nil {
		return fmt.Errorf("delete instance: %w", err)
	}
	for _, zone := range b.spec.Zones {
		inst, err := b.instances.Get(ctx, &computepb.GetInstanceRequest{Project: b.spec.Project, Zone: zone, Instance: name})
		if code(err) == http.StatusNotFound {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete instance %s: %w", name, classify("get instance", err))
		}
		if inst.GetLabels()[LabelManager] != LabelValue(b.manager) {
			continue
		}
		reqID := RequestID(name, zone, "delete", fmt.Sprint(inst.GetId()))
		op, err := b.instances.Delete(ctx, &computepb.DeleteInstanceRequest{Project: b.spec.Project, Zone: zone, Instance: name, RequestId: proto.String(reqID)})
		if code(err) == http.StatusNotFound {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete instance %s in %s: %w", name, zone, classify("delete", err))
		}
		done, err := b.wait(ctx, zone, op.Proto())
		if err != nil {
			return fmt.Errorf("delete instance %s in %s: %w", name, zone, err)
		}
		if err := opError(done); err != nil && !strings.Contains(err.Error(), "RESOURCE_NOT_FOUND") {
			return fmt.Errorf("delete instance %s in %s: %w", name, zone, err)
		}
		b.log.InfoContext(ctx, "instance deleted", "runner", name, "zone", zone)
	}
	return nil
}

// UpdateRunner sets the job's metadata as labels of the runner's instance
// (backend.Meta* keys, values made valid by LabelValue), keeping its other
// labels: setLabels replaces them all and takes the label fingerprint of
// the instance read just before. A fingerprint gone stale meanwhile (412:
// the labels changed) is read again and retried once. No instance of this
// manager in the spec's zones is a permanent error.
func (b *Backend) UpdateRunner(ctx context.Context, name string, md backend.RunnerMetadata) error {
	if err := backend.CheckRunnerName(name); err != nil {
		return fmt.Errorf("update instance: %w", err)
	}
	for attempt := 1; ; attempt++ {
		err := b.setLabels(ctx, name, md)
		var stale errStale
		if attempt == 1 && errors.As(err, &stale) {
			continue
		}
		return err
	}
}

// errStale wraps a 412 of setLabels, so that UpdateRunner retries it.
type errStale struct{ err error }

func (e errStale) Error() string { return e.err.Error() }
func (e errStale) Unwrap() error { return e.err }

func (b *Backend) setLabels(ctx context.Context, name string, md backend.RunnerMetadata) error {
	inst, ok, err := b.find(ctx, name)
	if err != nil {
		return fmt.Errorf("update instance %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("update instance %s: not found: %w", name, backend.ErrPermanent)
	}
	zone, _, _ := strings.Cut(inst.ID, "/")
	cur, err := b.instances.Get(ctx, &computepb.GetInstanceRequest{Project: b.spec.Project, Zone: zone, Instance: name})
	if err != nil {
		return fmt.Errorf("update instance %s: %w", name, classify("get instance", err))
	}
	labels := maps.Clone(cur.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range md.Values() {
		labels[k] = LabelValue(v)
	}
	if maps.Equal(labels, cur.GetLabels()) {
		return nil // already set: no call
	}
	op, err := b.instances.SetLabels(ctx, &computepb.SetLabelsInstanceRequest{
		Project: b.spec.Project, Zone: zone, Instance: name,
		InstancesSetLabelsRequestResource: &computepb.InstancesSetLabelsRequest{
			Labels: labels, LabelFingerprint: proto.String(cur.GetLabelFingerprint()),
		},
	})
	if err != nil {
		e := fmt.Errorf("update instance %s: %w", name, classify("set labels", err))
		if code(err) == http.StatusPreconditionFailed {
			return errStale{e}
		}
		return e
	}
	done, err := b.wait(ctx, zone, op.Proto())
	if err != nil {
		return fmt.Errorf("update instance %s: %w", name, err)
	}
	if err := opError(done); err != nil {
		return fmt.Errorf("update instance %s: %w", name, err)
	}
	return nil
}

// ListFilter is the server-side filter of List.
func (b *Backend) ListFilter() string {
	return fmt.Sprintf("labels.%s = %q", LabelManager, LabelValue(b.manager))
}

// List returns the manager's instances in every zone of the spec, whatever
// their status (a TERMINATED instance still holds its disk).
func (b *Backend) List(ctx context.Context) ([]backend.Instance, error) {
	var out []backend.Instance
	for _, zone := range b.spec.Zones {
		it := b.instances.List(ctx, &computepb.ListInstancesRequest{
			Project: b.spec.Project, Zone: zone, Filter: proto.String(b.ListFilter()), MaxResults: proto.Uint32(b.pageSize),
		})
		for {
			inst, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("list instances in %s: %w", zone, classify("list", err))
			}
			// The filter is the server's; check it again.
			if inst.GetLabels()[LabelManager] != LabelValue(b.manager) {
				continue
			}
			out = append(out, b.instance(zone, inst))
		}
	}
	return out, nil
}

func (b *Backend) instance(zone string, i *computepb.Instance) backend.Instance {
	out := backend.Instance{
		Name:  cmpOr(i.GetLabels()[LabelRunner], i.GetName()),
		ID:    zone + "/" + i.GetName(),
		Group: i.GetLabels()[LabelGroup],
		State: strings.ToLower(i.GetStatus()),
	}
	if t, err := time.Parse(time.RFC3339, i.GetCreationTimestamp()); err == nil {
		out.CreatedAt = t
	}
	return out
}

// Error classification.

// normalize folds an error code or reason for comparison:
// ZONE_RESOURCE_POOL_EXHAUSTED and zoneResourcePoolExhausted are equal.
func normalize(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "_", ""))
}

var (
	capacityPrefixes = []string{"ZONERESOURCEPOOLEXHAUSTED", "QUOTAEXCEEDED", "RESOURCEPOOLEXHAUSTED", "RESOURCEEXHAUSTED", "INSUFFICIENTCAPACITY"}
	retryableReasons = []string{"RATELIMITEXCEEDED", "USERRATELIMITEXCEEDED", "BACKENDERROR", "INTERNALERROR", "RESOURCENOTREADY"}
)

// classOf maps the reasons or codes of an error and its HTTP status to a class.
func classOf(status int, reasons []string) error {
	for _, r := range reasons {
		n := normalize(r)
		for _, p := range capacityPrefixes {
			if strings.HasPrefix(n, p) {
				return backend.ErrCapacity
			}
		}
		if slices.Contains(retryableReasons, n) {
			return backend.ErrRetryable
		}
	}
	switch {
	case status == http.StatusTooManyRequests, status >= 500, status == 0:
		return backend.ErrRetryable
	case status >= 400:
		return backend.ErrPermanent
	}
	return backend.ErrRetryable
}

func code(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// classify wraps err, from the call what, with its class.
func classify(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", what, backend.ErrRetryable, err)
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return fmt.Errorf("%s: %w: %w", what, backend.ErrRetryable, err)
	}
	var reasons []string
	for _, e := range ge.Errors {
		reasons = append(reasons, e.Reason)
	}
	return fmt.Errorf("%s: HTTP %d %s: %s: %w", what, ge.Code, strings.Join(reasons, ","), ge.Message, classOf(ge.Code, reasons))
}

// opError returns the classified error of a DONE operation, nil when it succeeded.
func opError(op *computepb.Operation) error {
	if len(op.GetError().GetErrors()) == 0 && (op.HttpErrorStatusCode == nil || op.GetHttpErrorStatusCode() < 400) {
		return nil
	}
	var codes, msgs []string
	for _, e := range op.GetError().GetErrors() {
		codes = append(codes, e.GetCode())
		msgs = append(msgs, e.GetMessage())
	}
	status := int(op.GetHttpErrorStatusCode())
	class := classOf(status, codes)
	if status == 0 {
		// An operation error without a status: permanent unless its code
		// says capacity or retry.
		class = classOf(http.StatusBadRequest, codes)
	}
	return fmt.Errorf("operation %s: %s: %s: %w", op.GetName(), strings.Join(codes, ","), strings.Join(msgs, "; "), class)
}
