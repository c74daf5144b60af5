package webhooktest

import (
	"encoding/json"
	"strconv"
	"testing"
)

func TestVariantsAreSignedLikeSign(t *testing.T) {
	for _, secret := range []string{"s", "whsec-current-7f3a9c1e", string(make([]byte, 100))} {
		v := NewVariants(secret, Payload(ActionQueued, 9, []string{"self-hosted"}))
		seen := map[string]bool{}
		for n := range int64(5) {
			body, sig := v.Body("run-" + strconv.FormatInt(n*1000, 10))
			if want := Sign(secret, body); sig != want {
				t.Fatalf("variant %d: signature %s, want %s", n, sig, want)
			}
			var doc map[string]any
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatalf("variant %d is not JSON: %v", n, err)
			}
			if doc["load_id"] != "run-"+strconv.FormatInt(n*1000, 10) || doc["action"] != ActionQueued {
				t.Fatalf("variant %d: load_id %v, action %v", n, doc["load_id"], doc["action"])
			}
			if seen[string(body)] {
				t.Fatalf("variant %d repeats a body", n)
			}
			seen[string(body)] = true
		}
	}
}
