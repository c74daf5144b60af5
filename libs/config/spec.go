package config

import (
	"crypto/sha256"
	"encoding/hex"
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

// CanonicalInstanceSpec returns the instance specification js of backend type
// typ decoded and encoded again: two specifications are the same when their
// canonical forms are equal, whatever their key order, spacing or fields
// unknown to this version (which no backend of this version would use).
func CanonicalInstanceSpec(typ string, js []byte) ([]byte, error) {
	var spec any
	var err error
	switch typ {
	case BackendDocker:
		spec, err = DecodeDockerSpec(js)
	case BackendAWS:
		spec, err = DecodeAWSSpec(js)
	case BackendGCP:
		spec, err = DecodeGCPSpec(js)
	default:
		return nil, fmt.Errorf("instance spec: unknown backend type %q", typ)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(spec)
}

// SpecHash is the hash of what a group's configuration decides about its
// runners: backend type, instance specification, organization, repository,
// labels and runner group name. The scheduler puts it in every create
// command and the provisioner compares it with its own: a difference means
// the two run different configurations (a rolling change), and the command
// waits rather than start a runner neither configuration fully describes.
// Stable across processes: the SHA-256, in hex, of a JSON encoding with a
// fixed field order.
func SpecHash(g *RunnerGroup) (string, error) {
	is, err := g.InstanceSpecJSON()
	if err != nil {
		return "", err
	}
	canon, err := CanonicalInstanceSpec(g.Backend.Type, is)
	if err != nil {
		return "", fmt.Errorf("spec hash of group %s: %w", g.Name, err)
	}
	labels := g.Labels
	if labels == nil {
		labels = []string{}
	}
	b, err := json.Marshal(struct {
		Version      int             `json:"v"`
		Group        string          `json:"group"`
		BackendType  string          `json:"backend_type"`
		InstanceSpec json.RawMessage `json:"instance_spec"`
		Organization string          `json:"organization"`
		Repository   string          `json:"repository"`
		Labels       []string        `json:"labels"`
	}{1, g.Name, g.Backend.Type, canon, g.Organization, g.Repository, labels})
	if err != nil {
		return "", fmt.Errorf("spec hash of group %s: %w", g.Name, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
