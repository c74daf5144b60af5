package service

import (
	"errors"
	"reflect"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// Env is the environment every binary reads, besides the secrets
// (config.Secrets, prefix RM_, read by config.Load). A binary with variables
// of its own declares one struct that embeds Env and passes a pointer to it in
// Options.Env; Run fills it with envconfig before anything else.
// docs/configuration.md lists every variable, and a test compares that table
// with these structs (EnvVariables).
type Env struct {
	// Config is the configuration file; --config wins.
	Config string `envconfig:"RM_CONFIG"`
	// Listen overrides the listen address of the configuration; --listen wins.
	Listen string `envconfig:"RM_LISTEN"`
	// LogLevel is debug, info, warn or error; anything else is info.
	LogLevel string `envconfig:"RM_LOG_LEVEL"`
	// PodName names the replica in its consumer groups (the pod's name under
	// Kubernetes); empty: the host name.
	PodName string `envconfig:"POD_NAME"`
	// OTLPEndpoint and OTLPTracesEndpoint switch tracing on: either set, spans
	// are exported with OTLP over HTTP. The OpenTelemetry exporter reads
	// them, and its other OTEL_EXPORTER_OTLP_* variables, itself.
	OTLPEndpoint       string `envconfig:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTLPTracesEndpoint string `envconfig:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
}

// common gives Run the Env embedded in a binary's struct.
func (e *Env) common() *Env { return e }

// binaryEnv is a pointer to Env or to a struct that embeds it.
type binaryEnv interface{ common() *Env }

// EnvVariables returns the names of the variables a struct read with
// envconfig.Process(prefix, spec) reads: the envconfig tag of each field
// (prefix_TAG with a prefix), through embedded structs. Fields tagged
// ignored:"true" are included: the struct still names a variable its own
// code reads (config.Secrets reads the App's ids so).
func EnvVariables(prefix string, spec any) []string {
	t := reflect.TypeOf(spec)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for f := range t.Fields() {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			names = append(names, EnvVariables(prefix, reflect.New(f.Type).Interface())...)
			continue
		}
		tag := f.Tag.Get("envconfig")
		if tag == "" || !f.IsExported() {
			continue
		}
		name := strings.ToUpper(tag)
		if prefix != "" {
			name = strings.ToUpper(prefix) + "_" + name
		}
		names = append(names, name)
	}
	return names
}

var errNotEnv = errors.New("Options.Env is not a pointer to a struct embedding service.Env")

// loadEnv fills spec (nil: an Env of its own) from the environment and
// returns the Env it holds.
func loadEnv(spec any) (*Env, error) {
	if spec == nil {
		spec = &Env{}
	}
	be, ok := spec.(binaryEnv)
	if !ok {
		return nil, errNotEnv
	}
	if err := envconfig.Process("", spec); err != nil {
		return nil, err
	}
	return be.common(), nil
}
