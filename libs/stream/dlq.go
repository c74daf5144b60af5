package stream

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fields of a DLQ entry, besides FieldType, FieldData and FieldTraceparent
// copied from the original entry.
const (
	FieldOriginStream = "origin_stream" // stream the entry came from
	FieldOriginID     = "origin_id"     // its id there
	FieldReason       = "reason"        // last handler error, or why it was given up
	FieldDeliveries   = "deliveries"    // deliveries when it was given up
	FieldGroup        = "group"         // consumer group that gave it up
	FieldConsumer     = "consumer"      // consumer that gave it up
	FieldTime         = "time"          // when, RFC 3339 UTC
)

// ErrNotFound: no such DLQ entry.
var ErrNotFound = errors.New("stream: dead letter not found")

// DeadLetter is an entry of a DLQ stream: a message given up after too many
// deliveries.
type DeadLetter struct {
	ID           string // id in the DLQ
	OriginStream string
	OriginID     string
	Type         string
	Data         []byte
	Traceparent  string
	Reason       string
	Deliveries   int64
	Group        string
	Consumer     string
	Time         time.Time
}

// Message returns the original message of the dead letter.
func (d DeadLetter) Message() Message {
	return Message{Stream: d.OriginStream, ID: d.OriginID, Type: d.Type, Data: d.Data, Traceparent: d.Traceparent, Deliveries: d.Deliveries}
}

func deadLetterOf(m redis.XMessage) DeadLetter {
	str := func(k string) string {
		s, _ := m.Values[k].(string)
		return s
	}
	d := DeadLetter{
		ID:           m.ID,
		OriginStream: str(FieldOriginStream),
		OriginID:     str(FieldOriginID),
		Type:         str(FieldType),
		Data:         []byte(str(FieldData)),
		Traceparent:  str(FieldTraceparent),
		Reason:       str(FieldReason),
		Group:        str(FieldGroup),
		Consumer:     str(FieldConsumer),
	}
	d.Deliveries, _ = strconv.ParseInt(str(FieldDeliveries), 10, 64)
	d.Time, _ = time.Parse(time.RFC3339Nano, str(FieldTime))
	return d
}

// ListDLQ returns up to count dead letters of dlq, newest first (count <= 0: 100).
func ListDLQ(ctx context.Context, rdb redis.UniversalClient, dlq string, count int64) ([]DeadLetter, error) {
	if count <= 0 {
		count = 100
	}
	msgs, err := rdb.XRevRangeN(ctx, dlq, "+", "-", count).Result()
	if err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", dlq, err)
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, deadLetterOf(m))
	}
	return out, nil
}

// OldestDLQ returns up to count dead letters of dlq, oldest first (count <= 0: 100).
func OldestDLQ(ctx context.Context, rdb redis.UniversalClient, dlq string, count int64) ([]DeadLetter, error) {
	if count <= 0 {
		count = 100
	}
	msgs, err := rdb.XRangeN(ctx, dlq, "-", "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", dlq, err)
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, deadLetterOf(m))
	}
	return out, nil
}

// Fingerprint is the hex SHA-256 of the dead letter's origin stream, type
// and data: the same message dead-lettered again keeps it.
func (d DeadLetter) Fingerprint() string {
	h := sha256.New()
	for _, p := range [][]byte{[]byte(d.OriginStream), []byte(d.Type), d.Data} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RetryOption changes how RetryDLQ re-publishes a dead letter.
type RetryOption func(*retryOptions)

type retryOptions struct{ maxLen int64 }

// WithMaxLen trims the origin stream with MAXLEN ~ n when re-publishing
// (default DefaultMaxLen); pass the configured stream length.
func WithMaxLen(n int64) RetryOption {
	return func(o *retryOptions) {
		if n > 0 {
			o.maxLen = n
		}
	}
}

// RetryDLQ puts the dead letter id of dlq back on its origin stream (a new
// entry with its type, data and traceparent, delivered to the consumer group
// again from its first delivery) and deletes it from dlq, atomically. It
// returns ErrNotFound when there is no such dead letter.
func RetryDLQ(ctx context.Context, rdb redis.UniversalClient, dlq, id string, opts ...RetryOption) error {
	o := retryOptions{maxLen: DefaultMaxLen}
	for _, opt := range opts {
		opt(&o)
	}
	msgs, err := rdb.XRange(ctx, dlq, id, id).Result()
	if err != nil {
		return fmt.Errorf("read dead letter %s of %s: %w", id, dlq, err)
	}
	if len(msgs) == 0 {
		return fmt.Errorf("retry dead letter %s of %s: %w", id, dlq, ErrNotFound)
	}
	origin := deadLetterOf(msgs[0]).OriginStream
	if origin == "" {
		return fmt.Errorf("retry dead letter %s of %s: it names no origin stream", id, dlq)
	}
	err = retryDLQScript.Run(ctx, rdb, []string{dlq, origin}, id, o.maxLen, FieldType, FieldData, FieldTraceparent).Err()
	if isNil(err) {
		return fmt.Errorf("retry dead letter %s of %s: %w", id, dlq, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("retry dead letter %s of %s: %w", id, dlq, err)
	}
	return nil
}

func isNil(err error) bool { return errors.Is(err, redis.Nil) }
