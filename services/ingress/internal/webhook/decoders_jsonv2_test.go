//go:build goexperiment.jsonv2

package webhook

import (
	jsonv1 "encoding/json"
	jsonv2 "encoding/json/v2"
)

// With GOEXPERIMENT=jsonv2: encoding/json/v2 with its own defaults (names
// matched exactly, duplicate names and invalid UTF-8 refused) and with
// encoding/json's (DefaultOptionsV1). Under the experiment encoding/json
// itself runs on v2.
func init() {
	candidates = append(candidates,
		candidate{"encoding-json-v2", func(b []byte, p *payload) error { return jsonv2.Unmarshal(b, p) }},
		candidate{"encoding-json-v2-v1options", func(b []byte, p *payload) error {
			return jsonv2.Unmarshal(b, p, jsonv1.DefaultOptionsV1())
		}},
	)
}
