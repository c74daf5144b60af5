// Package stream is the one Redis Streams runtime every publisher and consumer
// of runner-manager uses. Every entry has three fields: "type", "data" (a
// protobuf message of proto/runnermanager/v1) and "traceparent" (W3C).
package stream

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
)

// Entry field names.
const (
	FieldType        = "type"
	FieldData        = "data"
	FieldTraceparent = "traceparent"
)

// Message types.
const (
	TypeWorkflowJob = "workflow_job" // rmv1.WorkflowJobEvent on {P}:events
	TypeCommand     = "command"      // rmv1.ProvisionCommand on {P}:provision:<type>
	TypeResult      = "result"       // rmv1.ProvisionResult on {P}:results
)

// Message is one entry handed to a Handler.
type Message struct {
	Stream      string
	ID          string
	Type        string
	Data        []byte
	Traceparent string
	// Deliveries counts how many times the entry was delivered, this one included.
	Deliveries int64
}

// Unmarshal decodes the entry's data into v.
func (m Message) Unmarshal(v proto.Message) error {
	if err := proto.Unmarshal(m.Data, v); err != nil {
		return fmt.Errorf("decode %s entry %s of %s: %w", m.Type, m.ID, m.Stream, err)
	}
	return nil
}

// Values returns the XADD field/value list of a message, with the trace
// context of ctx. Lua scripts that XADD themselves take these as ARGV.
func Values(ctx context.Context, msgType string, m proto.Message) ([]any, error) {
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", msgType, err)
	}
	return []any{FieldType, msgType, FieldData, data, FieldTraceparent, Traceparent(ctx)}, nil
}

// Publisher appends messages to streams, trimming each with MAXLEN ~.
type Publisher struct {
	rdb    redis.UniversalClient
	maxLen int64
}

// NewPublisher returns a Publisher that trims every stream to about maxLen entries.
func NewPublisher(rdb redis.UniversalClient, maxLen int64) *Publisher {
	return &Publisher{rdb: rdb, maxLen: maxLen}
}

// MaxLen is the approximate length every stream is trimmed to.
func (p *Publisher) MaxLen() int64 { return p.maxLen }

// Publish appends m to stream and returns the entry id.
func (p *Publisher) Publish(ctx context.Context, stream, msgType string, m proto.Message) (string, error) {
	vals, err := Values(ctx, msgType, m)
	if err != nil {
		return "", err
	}
	id, err := p.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: stream,
		MaxLen: p.maxLen,
		Approx: true,
		Values: vals,
	}).Result()
	if err != nil {
		return "", fmt.Errorf("publish %s to %s: %w", msgType, stream, err)
	}
	return id, nil
}
