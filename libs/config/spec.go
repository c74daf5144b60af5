package config

import (
	"encoding/json"
	"fmt"
)

// InstanceSpecJSON returns the JSON of the instance specification of the
// group's backend type (DockerSpec, AWSSpec or GCPSpec), as carried by a
// create command to the provisioner of that type. Decode it with
// DecodeDockerSpec, DecodeAWSSpec or DecodeGCPSpec.
func (g *RunnerGroup) InstanceSpecJSON() ([]byte, error) {
	var spec any
	switch g.Backend.Type {
	case BackendDocker:
		d := g.Backend.Docker
		if d == nil {
			d = &DockerSpec{Image: DefaultDockerImage, StopTimeout: DefaultDockerStopTimeout,
				Memory: DefaultDockerMemory, PidsLimit: DefaultDockerPidsLimit}
		}
		spec = d
	case BackendAWS:
		if g.Backend.AWS == nil {
			return nil, fmt.Errorf("instance spec of group %s: no aws section", g.Name)
		}
		spec = g.Backend.AWS
	case BackendGCP:
		if g.Backend.GCP == nil {
			return nil, fmt.Errorf("instance spec of group %s: no gcp section", g.Name)
		}
		spec = g.Backend.GCP
	default:
		return nil, fmt.Errorf("instance spec of group %s: unknown backend type %q", g.Name, g.Backend.Type)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("instance spec of group %s: %w", g.Name, err)
	}
	return b, nil
}

// DecodeDockerSpec decodes the JSON of InstanceSpecJSON for type docker.
// Unknown fields are ignored, so a newer scheduler may add fields during a
// rolling upgrade.
func DecodeDockerSpec(b []byte) (*DockerSpec, error) { return decodeSpec[DockerSpec](b, BackendDocker) }

// DecodeAWSSpec decodes the JSON of InstanceSpecJSON for type aws.
func DecodeAWSSpec(b []byte) (*AWSSpec, error) { return decodeSpec[AWSSpec](b, BackendAWS) }

// DecodeGCPSpec decodes the JSON of InstanceSpecJSON for type gcp.
func DecodeGCPSpec(b []byte) (*GCPSpec, error) { return decodeSpec[GCPSpec](b, BackendGCP) }

func decodeSpec[T any](b []byte, typ string) (*T, error) {
	var s T
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode %s instance spec: %w", typ, err)
	}
	return &s, nil
}
