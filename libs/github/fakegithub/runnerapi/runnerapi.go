// Package runnerapi is the small HTTP protocol between the fake GitHub and the
// fake runner. It stands in for the real runner's Actions service protocol.
//
// The encoded JIT configuration handed out by generate-jitconfig is the standard
// base64 encoding of a JSON JITConfig. With it, a runner:
//
//  1. opens GET {URL}/_runner/{runner_id}/connect with "Authorization: Bearer <secret>".
//     The answer is a stream of newline-delimited JSON Messages that stays open
//     as long as the runner is connected; the runner is "online" exactly while this
//     stream is open. The first message is "hello"; "ping" keeps it alive; "job"
//     assigns the one job of this ephemeral runner; "cancel" cancels it; "removed"
//     means the registration was deleted and the runner must exit.
//  2. after running the job, POSTs a Completion to
//     {URL}/_runner/{runner_id}/jobs/{job_id}/complete (same Authorization) and exits.
//
// Errors on connect: 401 wrong secret, 403 the runner was disconnected by a test,
// 404 unknown runner, 409 already connected, 410 the registration is gone (removed,
// or its one job is done).
package runnerapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// JITConfig is what the fake's encoded_jit_config carries. It is a credential:
// never log it.
type JITConfig struct {
	RunnerID   int64    `json:"runner_id"`
	RunnerName string   `json:"runner_name"`
	Labels     []string `json:"labels"`
	// Secret authenticates the runner to the fake.
	Secret string `json:"secret"`
	// URL is the base URL of the fake GitHub as the registering client saw it.
	URL string `json:"url"`
}

// Encode returns the base64 form handed out as encoded_jit_config.
func (c JITConfig) Encode() string {
	b, err := json.Marshal(c)
	if err != nil { // cannot happen: plain struct
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeJITConfig parses an encoded_jit_config. The error never contains the input.
func DecodeJITConfig(s string) (JITConfig, error) {
	var c JITConfig
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return c, errors.New("decode jit config: not base64")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, errors.New("decode jit config: not a fake JIT config")
	}
	if c.RunnerID == 0 || c.Secret == "" || c.URL == "" {
		return c, errors.New("decode jit config: missing runner_id, secret or url")
	}
	return c, nil
}

// Message types on the connect stream.
const (
	TypeHello   = "hello"
	TypePing    = "ping"
	TypeJob     = "job"
	TypeCancel  = "cancel"
	TypeRemoved = "removed"
)

// Message is one line of the connect stream.
type Message struct {
	Type string `json:"type"`
	Job  *Job   `json:"job,omitempty"`
}

// Job is an assignment sent to a runner.
type Job struct {
	ID         int64    `json:"id"`
	Owner      string   `json:"owner"`
	Repo       string   `json:"repo"`
	Labels     []string `json:"labels"`
	DurationMS int64    `json:"duration_ms"`
}

// Completion is the body of the complete call.
type Completion struct {
	// Conclusion: "success" (default), "failure" or "cancelled".
	Conclusion string `json:"conclusion"`
}

// ConnectPath is the path of the connect stream of a runner.
func ConnectPath(runnerID int64) string {
	return "/_runner/" + strconv.FormatInt(runnerID, 10) + "/connect"
}

// CompletePath is the path on which a runner reports its job done.
func CompletePath(runnerID, jobID int64) string {
	return fmt.Sprintf("/_runner/%d/jobs/%d/complete", runnerID, jobID)
}
