package config

import (
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
