package webhook

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// sameAsEncodingJSON checks that decodeFast accepts exactly what json.Unmarshal
// into payload accepts, with the same result.
func sameAsEncodingJSON(t *testing.T, body []byte) {
	t.Helper()
	var want, got payload
	errStd := json.Unmarshal(body, &want)
	errFast := decodeFast(body, &got)
	if (errStd == nil) != (errFast == nil) {
		t.Fatalf("encoding/json: %v, decodeFast: %v, for %q", errStd, errFast, body)
	}
	if errStd == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("encoding/json decoded %+v, decodeFast %+v, for %q", want, got, body)
	}
}

var decodeCases = []string{
	``, ` `, `null`, `true`, `1`, `"x"`, `[]`, `{}`, `{} `, ` {}x`, `{}{}`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`,
	`{"action":"queued"}`, `{"action":null}`, `{"action":1}`, `{"action":"a","action":"b"}`, `{"action":"a","action":null}`,
	`{"ACTION":"x"}`, `{"Action":"x","action":"y"}`, `{"\u0061ction":"esc"}`, `{"a\u0063tion":"x\ny\u00e9\ud83d\ude00"}`,
	"{\"action\":\"bad\xffutf8\"}", "{\"action\":\"ctl\x01\"}", `{"action":"\x"}`, `{"action":"\u12"}`, `{"action":"\u12G4"}`,
	`{"workflow_job":null}`, `{"workflow_job":{}}`, `{"workflow_job":[]}`, `{"workflow_job":{"id":1}}`,
	`{"workflow_job":{"id":1.0}}`, `{"workflow_job":{"id":1e2}}`, `{"workflow_job":{"id":-0}}`, `{"workflow_job":{"id":01}}`,
	`{"workflow_job":{"id":9223372036854775807}}`, `{"workflow_job":{"id":9223372036854775808}}`, `{"workflow_job":{"id":"1"}}`,
	`{"workflow_job":{"id":1,"name":"a"},"workflow_job":{"id":2}}`, `{"workflow_job":{"id":1},"workflow_job":null}`,
	`{"workflow_job":{"run_id":2.0,"runner_id":null,"runner_group_id":1e3}}`, `{"workflow_job":{"run_id":2.5}}`,
	`{"workflow_job":{"run_id":"2"}}`, `{"workflow_job":{"run_id":{}}}`, `{"workflow_job":{"run_id":1e400}}`, `{"workflow_job":{"run_id":-}}`,
	`{"workflow_job":{"labels":null}}`, `{"workflow_job":{"labels":[]}}`, `{"workflow_job":{"labels":["a",null,"b"]}}`,
	`{"workflow_job":{"labels":["a","b"],"labels":[null]}}`, `{"workflow_job":{"labels":[1]}}`, `{"workflow_job":{"labels":"a"}}`,
	`{"workflow_job":{"labels":["a",]}}`, `{"workflow_job":{"ſtatus":"long s","\u212aey":1}}`, `{"workflow_job":{"STATUS":"x"}}`,
	`{"repository":{"id":5,"name":"r","owner":{"login":"o","id":"x"}}}`, `{"repository":null}`, `{"repository":{"owner":null}}`,
	`{"repository":"x"}`, `{"installation":{"id":null}}`, `{"installation":{"id":true}}`, `{"x":[1,{"a":[true,false,null]}]}`,
	`{"x":tru}`, `{"x":nul}`, `{"x":-01}`, `{"x":1.}`, `{"x":1e}`, `{"x":.1}`, `{"x":+1}`, `{"x":[1 2]}`, `{"x" "y"}`,
	`{"action":"a"}` + "\t\r\n ", "\uFEFF{}",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`{"x":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000) + "}",
}

func TestDecodeFastIsEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		sameAsEncodingJSON(t, []byte(c))
	}
	for _, action := range []string{"queued", "waiting", "in_progress", "completed"} {
		sameAsEncodingJSON(t, webhooktest.Payload(action, 987654321, []string{"self-hosted", "linux"},
			webhooktest.WithInstallation(5), webhooktest.WithSteps(9)))
	}
}

// FuzzDecode: decodeFast and encoding/json agree on every input.
//
//	go test ./internal/webhook -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Add(webhooktest.Payload("queued", 1, []string{"self-hosted"}))
	f.Add(webhooktest.Payload("completed", 2, []string{"a", "b"}, webhooktest.WithInstallation(3), webhooktest.WithSteps(3)))
	f.Fuzz(func(t *testing.T, body []byte) {
		sameAsEncodingJSON(t, body)
	})
}

func TestSpecial(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := range 8 {
			var b [8]byte
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			w := uint64(0)
			for i := 7; i >= 0; i-- {
				w = w<<8 | uint64(b[i])
			}
			if special(w) == plain[c] {
				t.Fatalf("special(%q) = %v, byte %#x plain %v", b, special(w), c, plain[c])
			}
		}
	}
}
