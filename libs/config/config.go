// Package config holds the one configuration file shared by every service
// (docs/design.md §8) and the secrets that come only from the environment.
package config

import (
	"path"
	"strings"
	"time"
)

// Defaults of docs/design.md §8 and of each service's section.
const (
	DefaultName                = "runner-manager"
	DefaultGitHubBaseURL       = "https://api.github.com"
	DefaultRedisURL            = "redis://localhost:6379/0"
	DefaultHealthCheckInterval = 10 * time.Minute
	DefaultTimeToStart         = 10 * time.Minute
	DefaultTimeToLive          = 12 * time.Hour
	DefaultAPIReserve          = 500
	DefaultIngressListen       = ":8080"
	DefaultMaxBodyBytes        = 1 << 20
	DefaultSchedulerListen     = ":8081"
	DefaultProvisionerListen   = ":8082"
	DefaultConcurrency         = 8
	DefaultCallTimeout         = 5 * time.Minute
	DefaultStreamMaxLen        = 100_000
	DefaultMaxDeliveries       = 5
	// ReclaimMargin is added to provisioner.call_timeout to derive
	// streams.reclaim_min_idle when the file does not set it, so a command is
	// never taken over while a provisioner still works on it.
	ReclaimMargin = 1 * time.Minute
	// DefaultReclaimMinIdle is streams.reclaim_min_idle with every default:
	// DefaultCallTimeout + ReclaimMargin.
	DefaultReclaimMinIdle = DefaultCallTimeout + ReclaimMargin
	// DefaultDockerImage is the official runner image, pinned to a release
	// (actions/runner v2.330.0, 2025-11-19): never "latest", so an upgrade
	// is a change of this file or of the group's image.
	DefaultDockerImage = "ghcr.io/actions/actions-runner:2.330.0"
	// DefaultDockerPidsLimit bounds the processes of a runner container (a
	// fork bomb stops there); pids_limit: -1 lifts it.
	DefaultDockerPidsLimit = 4096
	// DefaultDockerMemory is the memory limit of a runner container whose
	// group sets none; memory: "0" lifts it.
	DefaultDockerMemory = "4g"
	// DefaultMaxRunners is max_runners of a group that does not set it.
	DefaultMaxRunners = 20
)

// Config is the whole file. Field comments are the documentation of each key;
// deploy/config.example.yaml shows every one of them.
type Config struct {
	// Name prefixes every resource and Redis key ({P}); a lowercase DNS label.
	Name string `yaml:"name"`
	// GitHub holds the non-secret GitHub settings.
	GitHub GitHub `yaml:"github"`
	// Redis says where the streams and keys live.
	Redis Redis `yaml:"redis"`
	// HealthCheckInterval is how often the scheduler runs the health checks of docs/design.md §7.
	HealthCheckInterval time.Duration `yaml:"health_check_interval"`
	// TimeToStart is how long a runner may take to come online at GitHub.
	TimeToStart time.Duration `yaml:"time_to_start"`
	// TimeToLive is the age after which a runner is deleted, busy or not.
	TimeToLive time.Duration `yaml:"time_to_live"`
	// RunnerGroups, in order: the order breaks ties in MatchGroups.
	RunnerGroups []RunnerGroup `yaml:"runner_groups"`
	// Streams tunes every stream consumer and publisher.
	Streams Streams `yaml:"streams"`
	// Ingress is the ingress service's section.
	Ingress Ingress `yaml:"ingress"`
	// Scheduler is the scheduler service's section.
	Scheduler Scheduler `yaml:"scheduler"`
	// Provisioner is the section shared by every provisioner-<type>.
	Provisioner Provisioner `yaml:"provisioner"`

	// Secrets come from the environment only (prefix RM_), never from the file.
	Secrets Secrets `yaml:"-"`
}

// GitHub holds the non-secret GitHub settings.
type GitHub struct {
	// BaseURL of the REST API; for GitHub Enterprise Server https://HOST/api/v3.
	BaseURL string `yaml:"base_url"`
	// APIReserve is the number of REST calls per rate-limit window kept for the
	// calls that start runners (JIT); health checks wait rather than spend it.
	APIReserve int `yaml:"api_reserve"`
	// WebhookHookID is the id of an organization webhook, for the missed-webhook
	// recovery when authenticating with a token (an App needs none). Kept
	// for configurations of one organization: webhook_hooks lists several.
	WebhookHookID int64 `yaml:"webhook_hook_id"`
	// WebhookOrganization is the organization that owns WebhookHookID.
	WebhookOrganization string `yaml:"webhook_organization"`
	// WebhookHooks are the organization webhooks whose missed deliveries the
	// recovery redelivers, one per organization served by an organization
	// webhook (with a token, or beside an App's own webhook).
	WebhookHooks []WebhookHook `yaml:"webhook_hooks"`
}

// WebhookHook is an organization webhook.
type WebhookHook struct {
	Organization string `yaml:"organization"`
	HookID       int64  `yaml:"hook_id"`
}

// Hooks lists the organization webhooks of the recovery: webhook_hooks and
// the pair webhook_organization / webhook_hook_id when set.
func (g GitHub) Hooks() []WebhookHook {
	hooks := append([]WebhookHook(nil), g.WebhookHooks...)
	if g.WebhookHookID > 0 && g.WebhookOrganization != "" {
		hooks = append(hooks, WebhookHook{Organization: g.WebhookOrganization, HookID: g.WebhookHookID})
	}
	return hooks
}

// Redis says where the streams and keys live.
type Redis struct {
	// URL: redis://[:password@]host:port/db, rediss:// for TLS. RM_REDIS_URL overrides it.
	URL string `yaml:"url"`
	// SentinelMaster, when set with SentinelAddrs, selects Redis Sentinel instead of URL.
	SentinelMaster string `yaml:"sentinel_master"`
	// SentinelAddrs are the Sentinels' host:port addresses.
	SentinelAddrs []string `yaml:"sentinel_addrs"`
	// DB number used with Sentinel.
	DB int `yaml:"db"`
}

// Streams tunes every stream consumer and publisher.
type Streams struct {
	// MaxLen trims every stream with MAXLEN ~ this many entries.
	MaxLen int64 `yaml:"max_len"`
	// MaxDeliveries moves an entry to {P}:dlq after this many deliveries.
	MaxDeliveries int64 `yaml:"max_deliveries"`
	// ReclaimMinIdle is how long an entry stays pending with a consumer before
	// another replica takes it over (XAUTOCLAIM). Provisioners use at least
	// provisioner.call_timeout: when absent it is derived as call_timeout +
	// ReclaimMargin, and a value not above call_timeout is a problem.
	ReclaimMinIdle time.Duration `yaml:"reclaim_min_idle"`
}

// Ingress is the ingress service's section.
type Ingress struct {
	// Listen address of POST /webhook and the health endpoints.
	Listen string `yaml:"listen"`
	// MetricsListen, when set, is the address of a second listener serving
	// /metrics, /healthz and /readyz; /metrics then leaves Listen.
	MetricsListen string `yaml:"metrics_listen"`
	// MaxBodyBytes: larger bodies are refused with 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout of the HTTP server.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
}

// Scheduler is the scheduler service's section.
type Scheduler struct {
	// Listen address of the admin API and the health endpoints.
	Listen string `yaml:"listen"`
	// MetricsListen, when set, is the address of a second listener serving
	// /metrics, /healthz and /readyz; /metrics then leaves Listen.
	MetricsListen string `yaml:"metrics_listen"`
	// ReconcileInterval is the cheap loop that retries waiting demand.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// LeaseTTL of the leader lease for periodic work; another replica takes over
	// within one TTL when the holder dies.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// CreateRetries bounds the retries of a failed create before the reservation is released.
	CreateRetries int `yaml:"create_retries"`
	// CreateRetryBackoff is the first backoff between create retries (doubled each time).
	CreateRetryBackoff time.Duration `yaml:"create_retry_backoff"`
	// JobRetention keeps a completed job's record this long (idempotency of late events).
	JobRetention time.Duration `yaml:"job_retention"`
	// ReclaimMinIdle is how long an event or result stays pending with a dead
	// scheduler replica before another takes it over. Handlers are short Lua
	// calls and live replicas refresh their entries, so it can be short.
	ReclaimMinIdle time.Duration `yaml:"reclaim_min_idle"`
	// RecoveryInterval is how often the missed-webhook recovery lists the
	// webhook's deliveries and asks GitHub to redeliver the failed ones. A lost
	// "queued" webhook leaves its job waiting up to this long more.
	RecoveryInterval time.Duration `yaml:"recovery_interval"`
	// UsageTopRepositories: the usage report and metrics keep this many
	// repositories apart (the most runner-seconds over the window); the
	// others are folded into "other".
	UsageTopRepositories int `yaml:"usage_top_repositories"`
}

// Provisioner is the section shared by every provisioner-<type>.
type Provisioner struct {
	// Listen address of the health endpoints.
	Listen string `yaml:"listen"`
	// MetricsListen, when set, is the address of a second listener serving
	// /metrics, /healthz and /readyz; /metrics then leaves Listen.
	MetricsListen string `yaml:"metrics_listen"`
	// Concurrency bounds the commands handled at once by one replica.
	Concurrency int `yaml:"concurrency"`
	// CallTimeout bounds one backend call (create or delete).
	CallTimeout time.Duration `yaml:"call_timeout"`
}

// RunnerGroup is one group of runners: a GitHub runner group, its limits, its
// labels and the backend its runners run on.
type RunnerGroup struct {
	// Name of the GitHub runner group; a lowercase DNS label.
	Name string `yaml:"name"`
	// Organization the group belongs to (for a repository-level group, the owner).
	Organization string `yaml:"organization"`
	// Repository, when set, makes the runners repository-level runners.
	Repository string `yaml:"repository"`
	// RepositoryAccess is the runner group's visibility (organization-level groups only).
	RepositoryAccess RepositoryAccess `yaml:"repository_access"`
	// WorkflowAccess restricts the group to these workflows ("owner/repo/.github/workflows/x.yml@ref").
	WorkflowAccess []string `yaml:"workflow_access"`
	// MaxRunners bounds the runners of the group at any time (>= 1);
	// DefaultMaxRunners when absent, an explicit 0 is a problem.
	MaxRunners int `yaml:"max_runners"`
	// MinRunners are kept idle and ready even without demand (>= 0, default 0).
	MinRunners int `yaml:"min_runners"`
	// Labels of the runners; a job goes to a group whose labels include all of
	// its runs-on labels (self-hosted is implied). See MatchGroups.
	Labels []string `yaml:"labels"`
	// WorkflowName, when set, restricts the group to the jobs whose workflow
	// is named exactly this (the workflow_name of the workflow_job event,
	// case-sensitive). Empty: jobs of any workflow.
	WorkflowName string `yaml:"workflow_name"`
	// SpillOver lets the group take the jobs of a better-matching group that
	// is full (its runners at max_runners, none free). Default false.
	SpillOver bool `yaml:"spill_over"`
	// Backend the group's runners run on.
	Backend Backend `yaml:"backend"`
}

// RepositoryAccess is the runner group's repository visibility at GitHub.
type RepositoryAccess struct {
	// SelectedRepositories, empty for all repositories of the organization.
	SelectedRepositories []string `yaml:"selected_repositories"`
	// AllowsPublicRepositories defaults to true.
	AllowsPublicRepositories *bool `yaml:"allows_public_repositories"`
}

// Backend selects the backend type and holds that type's instance specification.
type Backend struct {
	// Type: docker, aws or gcp.
	Type string `yaml:"type"`
	// Docker is the instance specification of type docker (optional: every
	// field has a default).
	Docker *DockerSpec `yaml:"docker,omitempty"`
	// AWS is the instance specification of type aws (required for that type).
	AWS *AWSSpec `yaml:"aws,omitempty"`
	// GCP is the instance specification of type gcp (required for that type).
	GCP *GCPSpec `yaml:"gcp,omitempty"`
}

// DockerSpec is the instance specification of a Docker runner.
type DockerSpec struct {
	// Image of the runner container (production: the official actions runner image).
	Image string `yaml:"image" json:"image"`
	// Command overrides the image's command.
	Command []string `yaml:"command" json:"command,omitempty"`
	// CPUs limit (e.g. 2 or 0.5), 0 for none.
	CPUs float64 `yaml:"cpus" json:"cpus,omitempty"`
	// Memory limit in bytes or with a unit suffix (512m, 4g); empty for
	// DefaultDockerMemory, "0" for none.
	Memory string `yaml:"memory" json:"memory,omitempty"`
	// PidsLimit bounds the processes of the container; 0 for
	// DefaultDockerPidsLimit, -1 for none.
	PidsLimit int64 `yaml:"pids_limit" json:"pids_limit,omitempty"`
	// Network is a network name, "host" (unsafe: the runner shares the
	// host's network and reaches every service on its loopback), or "none";
	// empty for the bridge the provisioner makes for runners,
	// "<name>-runners" (DockerRunnerNetwork), never the services' network.
	Network string `yaml:"network" json:"network,omitempty"`
	// Env adds environment variables (never secrets of the manager).
	Env map[string]string `yaml:"env" json:"env,omitempty"`
	// Volumes as "source:target[:ro]". The Docker socket (docker.sock, or a
	// directory that holds it: /run, /var/run, /var, /) is refused: it would
	// give every job root on the host.
	Volumes []string `yaml:"volumes" json:"volumes,omitempty"`
	// Security hardens the container further, for jobs that need no sudo.
	Security *DockerSecurity `yaml:"security" json:"security,omitempty"`
	// StopTimeout is the grace period given to the runner on delete.
	StopTimeout time.Duration `yaml:"stop_timeout" json:"stop_timeout,omitempty"`
	// Host overrides the Docker daemon address (DOCKER_HOST by default).
	Host string `yaml:"host" json:"host,omitempty"`
}

// DockerSecurity are the options of a group whose jobs need no sudo.
// Runner containers are never privileged, whatever these say.
type DockerSecurity struct {
	// NoNewPrivileges forbids gaining privileges through setuid binaries:
	// sudo stops working in the job.
	NoNewPrivileges bool `yaml:"no_new_privileges" json:"no_new_privileges,omitempty"`
	// CapDrop lists the capabilities to drop (ALL, NET_RAW, CHOWN, ...).
	CapDrop []string `yaml:"cap_drop" json:"cap_drop,omitempty"`
}

// DockerRunnerNetwork is the name of the bridge the Docker provisioner
// makes for the runners of the manager called name.
func DockerRunnerNetwork(name string) string { return name + "-runners" }

// IsDockerSocketMount tells whether a bind source is the Docker socket or a
// directory that holds it (a job with the socket is root on the host).
func IsDockerSocketMount(source string) bool {
	if !strings.HasPrefix(source, "/") {
		return strings.HasSuffix(source, "docker.sock") // a relative path, not a named volume
	}
	clean := path.Clean(source)
	if path.Base(clean) == "docker.sock" {
		return true
	}
	for _, sock := range []string{"/var/run/docker.sock", "/run/docker.sock"} {
		if clean == "/" || strings.HasPrefix(sock, clean+"/") {
			return true
		}
	}
	return false
}

// Runner architectures of a VM backend (its architecture field).
const (
	ArchX64   = "x64"
	ArchARM64 = "arm64"
)

// RunnerBootstrap is the runner installation on a VM, shared by AWS and GCP.
type RunnerBootstrap struct {
	// RunnerVersion pins the actions runner to install, e.g. 2.321.0 (then
	// RunnerSHA256 is required); empty installs the version GitHub's
	// runner downloads API offers the scope (checksum verified).
	RunnerVersion string `yaml:"runner_version" json:"runner_version,omitempty"`
	// RunnerDownloadURL of a pinned RunnerVersion, with {version} and {arch}
	// replaced; defaults to GitHub's release asset.
	RunnerDownloadURL string `yaml:"runner_download_url" json:"runner_download_url,omitempty"`
	// RunnerSHA256 of the downloaded archive; the script refuses a mismatch.
	RunnerSHA256 string `yaml:"runner_sha256" json:"runner_sha256,omitempty"`
	// StartupScript replaces the built-in template (Go text/template).
	StartupScript string `yaml:"startup_script" json:"startup_script,omitempty"`
	// RunnerUser is the unprivileged user the runner runs as.
	RunnerUser string `yaml:"runner_user" json:"runner_user,omitempty"`
	// BlockMetadataServer forbids the runner user (so every job) and the
	// containers a job starts to reach the instance metadata server
	// (169.254.169.254, fd00:ec2::254, fd20:ce::254; DNS on port 53 stays
	// open), where the JIT configuration stays readable; it also hides the
	// instance's cloud credentials from jobs. Absent means true: see
	// BlocksMetadataServer.
	BlockMetadataServer *bool `yaml:"block_metadata_server" json:"block_metadata_server,omitempty"`
}

// BlocksMetadataServer is block_metadata_server with its default, true.
func (b RunnerBootstrap) BlocksMetadataServer() bool {
	return b.BlockMetadataServer == nil || *b.BlockMetadataServer
}

// RunnerArchitecture is an architecture field with its default, x64.
func RunnerArchitecture(arch string) string {
	if arch == "" {
		return ArchX64
	}
	return arch
}

// Bool returns a pointer to v, for the optional booleans of the file.
func Bool(v bool) *bool { return &v }

// AWSSpec is the instance specification of an EC2 runner.
type AWSSpec struct {
	// Region of the instances (required), e.g. eu-west-1.
	Region string `yaml:"region" json:"region"`
	// AMI id, or a launch template (one of the two).
	AMI            string          `yaml:"ami" json:"ami,omitempty"`
	LaunchTemplate *LaunchTemplate `yaml:"launch_template" json:"launch_template,omitempty"`
	// InstanceTypes in order of preference; a capacity error tries the next.
	InstanceTypes []string `yaml:"instance_types" json:"instance_types"`
	// Subnets in order of preference; a capacity error tries the next.
	Subnets []string `yaml:"subnets" json:"subnets"`
	// SecurityGroups are security group ids; empty for the VPC's default.
	SecurityGroups []string `yaml:"security_groups" json:"security_groups,omitempty"`
	// IAMInstanceProfile name or ARN given to the instances; empty for none.
	IAMInstanceProfile string `yaml:"iam_instance_profile" json:"iam_instance_profile,omitempty"`
	// RootVolumeSizeGB of the root volume; 0 keeps the AMI's size.
	RootVolumeSizeGB int32 `yaml:"root_volume_size_gb" json:"root_volume_size_gb,omitempty"`
	// RootVolumeType, e.g. gp3; empty keeps the AMI's type.
	RootVolumeType string `yaml:"root_volume_type" json:"root_volume_type,omitempty"`
	// RootDeviceName is the AMI's root device that root_volume_size_gb and
	// root_volume_type apply to; default /dev/xvda (Amazon Linux; Ubuntu and
	// Debian AMIs use /dev/sda1).
	RootDeviceName string `yaml:"root_device_name" json:"root_device_name,omitempty"`
	// Tags added to the instances and volumes (besides the ownership tags).
	Tags map[string]string `yaml:"tags" json:"tags,omitempty"`
	// Spot requests spot capacity; SpotFallbackOnDemand retries on-demand on a capacity error.
	Spot                 bool `yaml:"spot" json:"spot,omitempty"`
	SpotFallbackOnDemand bool `yaml:"spot_fallback_on_demand" json:"spot_fallback_on_demand,omitempty"`
	// Endpoint overrides the EC2 endpoint (tests, VPC endpoints).
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	// Architecture of the instances' CPU, x64 or arm64 (empty: x64): it
	// picks the runner package (linux-x64 or linux-arm64).
	Architecture string `yaml:"architecture" json:"architecture,omitempty"`
	// Bootstrap installs and starts the runner on the instance.
	Bootstrap RunnerBootstrap `yaml:"bootstrap" json:"bootstrap"`
}

// LaunchTemplate names an EC2 launch template by id or name.
type LaunchTemplate struct {
	// ID of the launch template (lt-...); or Name, not both.
	ID string `yaml:"id" json:"id,omitempty"`
	// Name of the launch template; or ID, not both.
	Name string `yaml:"name" json:"name,omitempty"`
	// Version: a number, $Default or $Latest; empty for $Default.
	Version string `yaml:"version" json:"version,omitempty"`
}

// GCPSpec is the instance specification of a Compute Engine runner.
type GCPSpec struct {
	// Project that hosts the instances (required).
	Project string `yaml:"project" json:"project"`
	// Zones in order of preference; a capacity error tries the next.
	Zones []string `yaml:"zones" json:"zones"`
	// MachineType, e.g. e2-standard-4 (required).
	MachineType string `yaml:"machine_type" json:"machine_type"`
	// Image by name (projects/P/global/images/NAME), or by family and project.
	Image string `yaml:"image" json:"image,omitempty"`
	// ImageFamily selects the newest image of the family in ImageProject.
	ImageFamily string `yaml:"image_family" json:"image_family,omitempty"`
	// ImageProject holds ImageFamily, e.g. ubuntu-os-cloud.
	ImageProject string `yaml:"image_project" json:"image_project,omitempty"`
	// DiskSizeGB of the boot disk; 0 keeps the image's size.
	DiskSizeGB int64 `yaml:"disk_size_gb" json:"disk_size_gb,omitempty"`
	// DiskType of the boot disk, e.g. pd-balanced; empty for the zone's default.
	DiskType string `yaml:"disk_type" json:"disk_type,omitempty"`
	// Network name or URL; empty for "default".
	Network string `yaml:"network" json:"network,omitempty"`
	// Subnetwork name or URL; empty for the network's auto subnetwork.
	Subnetwork string `yaml:"subnetwork" json:"subnetwork,omitempty"`
	// ExternalIP gives the instances an ephemeral public address.
	ExternalIP bool `yaml:"external_ip" json:"external_ip,omitempty"`
	// ServiceAccount email of the instances; empty for none.
	ServiceAccount string `yaml:"service_account" json:"service_account,omitempty"`
	// Scopes of the service account; empty for logging.write and
	// monitoring.write only (never cloud-platform unless listed here).
	Scopes []string `yaml:"scopes" json:"scopes,omitempty"`
	// Labels added to the instances (besides the ownership labels).
	Labels map[string]string `yaml:"labels" json:"labels,omitempty"`
	// Spot requests spot VMs; SpotFallbackStandard retries standard on a capacity error.
	Spot                 bool `yaml:"spot" json:"spot,omitempty"`
	SpotFallbackStandard bool `yaml:"spot_fallback_standard" json:"spot_fallback_standard,omitempty"`
	// NestedVirtualization enables VMX on the instances.
	NestedVirtualization bool `yaml:"nested_virtualization" json:"nested_virtualization,omitempty"`
	// OperationTimeout bounds the wait for the zone operation of an insert.
	OperationTimeout time.Duration `yaml:"operation_timeout" json:"operation_timeout,omitempty"`
	// Endpoint overrides the Compute Engine endpoint (tests, private access).
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	// Architecture of the instances' CPU, x64 or arm64 (empty: x64): it
	// picks the runner package (linux-x64 or linux-arm64).
	Architecture string `yaml:"architecture" json:"architecture,omitempty"`
	// Bootstrap installs and starts the runner on the instance.
	Bootstrap RunnerBootstrap `yaml:"bootstrap" json:"bootstrap"`
}
