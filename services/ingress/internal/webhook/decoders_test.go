package webhook

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/bytedance/sonic"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// The decoders BenchmarkDecoders compares with decodeFast (issue 18: the
// one-pass decoder stays only if it earns it). encoding/json into payload
// is the reference: FuzzDecode holds decodeFast to it. A candidate replaces
// decodeFast only if it is faster and agrees with the reference on every
// input; the "mismatches" metric counts the inputs of decodeCases (and the
// sample payloads) where it does not. decoders_jsonv2_test.go adds
// encoding/json/v2 when built with GOEXPERIMENT=jsonv2.
type candidate struct {
	name   string
	decode func([]byte, *payload) error
}

var candidates = []candidate{
	{"encoding-json", func(b []byte, p *payload) error { return json.Unmarshal(b, p) }},
	{"decodeFast", decodeFast},
	// sonic's ConfigStd is its encoding/json-compatible configuration
	// (UTF-8 validated, HTML escaping, sorted map keys).
	{"sonic-std", func(b []byte, p *payload) error { return sonic.ConfigStd.Unmarshal(b, p) }},
}

// mismatches counts the inputs on which decode and encoding/json differ:
// one accepts what the other refuses, or both accept with different results.
func mismatches(decode func([]byte, *payload) error) int {
	inputs := make([][]byte, 0, len(decodeCases)+4)
	for _, c := range decodeCases {
		inputs = append(inputs, []byte(c))
	}
	for _, action := range []string{"queued", "waiting", "in_progress", "completed"} {
		inputs = append(inputs, webhooktest.Payload(action, 987654321, []string{"self-hosted", "linux"},
			webhooktest.WithInstallation(5), webhooktest.WithSteps(9)))
	}
	n := 0
	for _, in := range inputs {
		var want, got payload
		errStd := json.Unmarshal(in, &want)
		err := safeDecode(decode, in, &got)
		if (errStd == nil) != (err == nil) || (errStd == nil && !reflect.DeepEqual(want, got)) {
			n++
		}
	}
	return n
}

// safeDecode turns a panic of a candidate into an error (a mismatch).
func safeDecode(decode func([]byte, *payload) error, b []byte, p *payload) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &json.UnsupportedValueError{Str: "panic"}
		}
	}()
	return decode(b, p)
}

// The reference and decodeFast never differ; the comparison counts what it
// should (a decoder that refuses everything differs on every valid input).
func TestMismatches(t *testing.T) {
	require := func(cond bool, format string, a ...any) {
		t.Helper()
		if !cond {
			t.Fatalf(format, a...)
		}
	}
	require(mismatches(candidates[0].decode) == 0, "encoding/json differs from itself")
	require(mismatches(decodeFast) == 0, "decodeFast differs from encoding/json")
	valid := 0
	for _, c := range decodeCases {
		var p payload
		if json.Unmarshal([]byte(c), &p) == nil {
			valid++
		}
	}
	refuseAll := func([]byte, *payload) error { return errSyntax }
	require(mismatches(refuseAll) == valid+4, "a decoder refusing everything: %d mismatches, want %d", mismatches(refuseAll), valid+4)
}

// BenchmarkDecoders: each candidate on a 7-12 KB completed delivery, with
// its mismatches against encoding/json as a metric.
//
//	go test ./internal/webhook -run '^$' -bench BenchmarkDecoders -benchmem -count 6
//	GOEXPERIMENT=jsonv2 go test ./internal/webhook -run '^$' -bench BenchmarkDecoders -benchmem -count 6
func BenchmarkDecoders(b *testing.B) {
	body := webhooktest.Payload("completed", 2, []string{"a", "b"}, webhooktest.WithInstallation(3))
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var p payload
				if err := c.decode(body, &p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(mismatches(c.decode)), "mismatches")
		})
	}
}
