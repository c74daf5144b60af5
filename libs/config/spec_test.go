package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestInstanceSpecJSONRoundTrip(t *testing.T) {
	t.Parallel()
	docker := &DockerSpec{Image: "img", Command: []string{"run"}, CPUs: 1.5, Memory: "4g", Network: "host",
		Env: map[string]string{"A": "b"}, Volumes: []string{"/a:/b:ro"}, StopTimeout: 7 * time.Second, Host: "unix:///d.sock"}
	aws := &AWSSpec{Region: "r", LaunchTemplate: &LaunchTemplate{ID: "lt-1", Version: "$Latest"}, InstanceTypes: []string{"t3.large"},
		Subnets: []string{"s1", "s2"}, SecurityGroups: []string{"sg"}, RootVolumeSizeGB: 50, Tags: map[string]string{"t": "v"},
		Spot: true, SpotFallbackOnDemand: true, Bootstrap: RunnerBootstrap{RunnerVersion: "2.321.0", RunnerUser: "runner", BlockMetadataServer: Bool(true)}}
	gcp := &GCPSpec{Project: "p", Zones: []string{"z1"}, MachineType: "m", ImageFamily: "f", ImageProject: "ip",
		Labels: map[string]string{"l": "v"}, OperationTimeout: time.Minute, Bootstrap: RunnerBootstrap{RunnerSHA256: "ab"}}

	b, err := (&RunnerGroup{Name: "d", Backend: Backend{Type: BackendDocker, Docker: docker}}).InstanceSpecJSON()
	require.NoError(t, err)
	gotDocker, err := DecodeDockerSpec(b)
	require.NoError(t, err)
	require.Equal(t, docker, gotDocker)

	b, err = (&RunnerGroup{Name: "a", Backend: Backend{Type: BackendAWS, AWS: aws}}).InstanceSpecJSON()
	require.NoError(t, err)
	gotAWS, err := DecodeAWSSpec(b)
	require.NoError(t, err)
	require.Equal(t, aws, gotAWS)

	b, err = (&RunnerGroup{Name: "g", Backend: Backend{Type: BackendGCP, GCP: gcp}}).InstanceSpecJSON()
	require.NoError(t, err)
	gotGCP, err := DecodeGCPSpec(b)
	require.NoError(t, err)
	require.Equal(t, gcp, gotGCP)
}

func TestInstanceSpecJSONOfLoadedConfig(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(group), validSecrets())
	require.NoError(t, err)
	b, err := cfg.RunnerGroups[0].InstanceSpecJSON()
	require.NoError(t, err)
	d, err := DecodeDockerSpec(b)
	require.NoError(t, err)
	require.Equal(t, DefaultDockerImage, d.Image)
	require.Equal(t, DefaultDockerStopTimeout, d.StopTimeout)
}

func TestInstanceSpecJSONErrors(t *testing.T) {
	t.Parallel()
	for _, b := range []Backend{{Type: BackendAWS}, {Type: BackendGCP}, {Type: "k8s"}} {
		_, err := (&RunnerGroup{Name: "x", Backend: b}).InstanceSpecJSON()
		require.Error(t, err, b.Type)
		require.Contains(t, err.Error(), "group x")
	}
	_, err := DecodeAWSSpec([]byte("{"))
	require.ErrorContains(t, err, "decode aws instance spec")
	// Unknown fields are ignored (rolling upgrades).
	d, err := DecodeDockerSpec([]byte(`{"image":"i","future_field":1}`))
	require.NoError(t, err)
	require.Equal(t, "i", d.Image)
}

func TestIsRunnerName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "rm-linux-abc123de", "a1-b2", strings.Repeat("a", 63)} {
		require.True(t, IsRunnerName(ok), ok)
	}
	for _, bad := range []string{"", "x; rm -rf /", "../x", "1abc", "-abc", "abc-", "Abc", "a_b", "a.b", "a b",
		"a\nb", "a/b", "é", strings.Repeat("a", 64)} {
		require.False(t, IsRunnerName(bad), "%q", bad)
	}
}

func TestSpecHash(t *testing.T) {
	t.Parallel()
	base := func() *RunnerGroup {
		return &RunnerGroup{Name: "linux", Organization: "acme", Labels: []string{"self-hosted", "linux"}, MaxRunners: 3,
			Backend: Backend{Type: BackendDocker, Docker: &DockerSpec{Image: "img", Env: map[string]string{"B": "2", "A": "1"}}}}
	}
	h, err := SpecHash(base())
	require.NoError(t, err)
	require.Len(t, h, 64)
	again, err := SpecHash(base())
	require.NoError(t, err)
	require.Equal(t, h, again, "not stable")

	// What does not concern a runner leaves it alone.
	g := base()
	g.MaxRunners, g.MinRunners, g.WorkflowAccess = 10, 2, []string{"o/r/.github/workflows/x.yml@main"}
	same, err := SpecHash(g)
	require.NoError(t, err)
	require.Equal(t, h, same)

	// Each field that reaches a runner changes it.
	for name, change := range map[string]func(*RunnerGroup){
		"group":        func(g *RunnerGroup) { g.Name = "linux2" },
		"organization": func(g *RunnerGroup) { g.Organization = "other" },
		"repository":   func(g *RunnerGroup) { g.Repository = "app" },
		"labels":       func(g *RunnerGroup) { g.Labels = []string{"self-hosted"} },
		"label order":  func(g *RunnerGroup) { g.Labels = []string{"linux", "self-hosted"} },
		"image":        func(g *RunnerGroup) { g.Backend.Docker.Image = "other" },
		"volumes":      func(g *RunnerGroup) { g.Backend.Docker.Volumes = []string{"/:/host"} },
		"host":         func(g *RunnerGroup) { g.Backend.Docker.Host = "tcp://10.0.0.1:2375" },
		"backend type": func(g *RunnerGroup) { g.Backend = Backend{Type: BackendGCP, GCP: &GCPSpec{Project: "p"}} },
		"gcp endpoint": func(g *RunnerGroup) {
			g.Backend = Backend{Type: BackendGCP, GCP: &GCPSpec{Project: "p", Endpoint: "http://x"}}
		},
	} {
		g := base()
		change(g)
		other, err := SpecHash(g)
		require.NoError(t, err)
		require.NotEqual(t, h, other, name)
	}
}

func TestCanonicalInstanceSpec(t *testing.T) {
	t.Parallel()
	a, err := CanonicalInstanceSpec(BackendDocker, []byte(`{"network":"n", "image":"i","unknown_later":1}`))
	require.NoError(t, err)
	b, err := CanonicalInstanceSpec(BackendDocker, []byte(`{"image":"i","network":"n"}`))
	require.NoError(t, err)
	require.Equal(t, a, b)
	_, err = CanonicalInstanceSpec(BackendDocker, []byte(`not json`))
	require.Error(t, err)
	_, err = CanonicalInstanceSpec("mem", []byte(`{}`))
	require.Error(t, err)
}
