package stream

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// dispatch starts the handling of e in its own goroutine, which holds one
// handler slot (taken by acquire) until it is done.
func (c *Consumer) dispatch(base context.Context, e entry) {
	c.mu.Lock()
	if _, dup := c.inflight[e.id]; dup {
		// Claimed again while its handler runs (the heartbeat could not
		// reach Redis for MinIdle): the running handler keeps it.
		c.mu.Unlock()
		c.release(1)
		return
	}
	ctx, cancel := context.WithCancelCause(base)
	d := &delivery{entry: e, cancel: cancel, claimed: e.readAt}
	c.inflight[e.id] = d
	c.mu.Unlock()

	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.release(1)
		defer func() {
			c.mu.Lock()
			delete(c.inflight, e.id)
			c.mu.Unlock()
			cancel(nil)
		}()
		c.process(ctx, d)
	}()
}

// process handles one entry and settles it: acknowledged, left pending for a
// retry, or moved to the DLQ.
func (c *Consumer) process(ctx context.Context, d *delivery) {
	e := d.entry
	log := c.log.With("id", e.id, "deliveries", e.deliveries)
	if e.values == nil {
		c.settle(d)
		log.Warn("entry was trimmed away while pending; acknowledging and skipping it")
		c.ack(e.id)
		c.cfg.Metrics.observeHandled(c.cfg.Stream, c.cfg.Group, OutcomeTrimmed, -1)
		return
	}
	m := c.message(e)
	if m.Deliveries > c.cfg.MaxDeliveries {
		c.settle(d)
		c.deadLetter(ctx, m, fmt.Sprintf("delivered %d times, never acknowledged (consumer crashed or shut down while handling it)", m.Deliveries))
		return
	}

	start := time.Now()
	err := c.call(ctx, m)
	seconds := time.Since(start).Seconds()
	c.settle(d)
	switch {
	case err == nil:
		c.ack(e.id)
		c.cfg.Metrics.observeHandled(c.cfg.Stream, c.cfg.Group, OutcomeOK, seconds)
	case context.Cause(ctx) != nil:
		// Given up by this consumer (shutdown deadline or claim lost): not a
		// failure of the entry; it stays pending for the next delivery.
		log.Warn("handler abandoned; entry stays pending", "type", m.Type, "error", err, "cause", context.Cause(ctx))
		c.cfg.Metrics.observeHandled(c.cfg.Stream, c.cfg.Group, OutcomeAbandoned, seconds)
	case m.Deliveries >= c.cfg.MaxDeliveries:
		c.cfg.Metrics.observeHandled(c.cfg.Stream, c.cfg.Group, outcomeOf(err), seconds)
		c.deadLetter(ctx, m, err.Error())
	default:
		retry := c.cfg.Backoff(m.Deliveries)
		log.Warn("handler failed; entry stays pending for a retry", "type", m.Type, "error", err, "retry_in", retry)
		c.cfg.Metrics.observeHandled(c.cfg.Stream, c.cfg.Group, outcomeOf(err), seconds)
		c.failed(e.id, retry)
	}
}

// settle marks the handling of d as over, so the heartbeat leaves it alone.
func (c *Consumer) settle(d *delivery) {
	c.mu.Lock()
	d.settling = true
	c.mu.Unlock()
}

func outcomeOf(err error) string {
	if errors.Is(err, ErrHandlerPanic) {
		return OutcomePanic
	}
	return OutcomeError
}

func (c *Consumer) message(e entry) Message {
	str := func(k string) string {
		s, _ := e.values[k].(string)
		return s
	}
	return Message{
		Stream:      c.cfg.Stream,
		ID:          e.id,
		Type:        str(FieldType),
		Data:        []byte(str(FieldData)),
		Traceparent: str(FieldTraceparent),
		Deliveries:  e.deliveries,
	}
}

// call runs the handler in a "consume <stream>" span that continues the
// entry's trace, and turns a panic into an error.
func (c *Consumer) call(ctx context.Context, m Message) (err error) {
	ctx = ContextWithTraceparent(ctx, m.Traceparent)
	ctx, span := c.tracer.Start(ctx, "consume "+m.Stream,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "redis"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Stream),
			attribute.String("messaging.consumer.group.name", c.cfg.Group),
			attribute.String("messaging.message.id", m.ID),
			attribute.String("messaging.message.type", m.Type),
			attribute.Int64("messaging.message.delivery_count", m.Deliveries),
		))
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked", "id", m.ID, "type", m.Type, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, r)
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	return c.h(ctx, m)
}

// ack acknowledges an entry on a context of its own: at shutdown the
// consumer's context is already cancelled. A failed acknowledgement leaves
// the entry pending: it will be delivered again.
func (c *Consumer) ack(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := c.rdb.XAck(ctx, c.cfg.Stream, c.cfg.Group, id).Err(); err != nil {
		c.log.Error("acknowledging entry failed; it will be delivered again", "id", id, "error", err)
	}
}

// failed restarts the idle time of a failed entry, so that its backoff counts
// from now, and makes the loop look for it when the backoff elapsed.
func (c *Consumer) failed(id string, retry time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := heartbeatScript.Run(ctx, c.rdb, []string{c.cfg.Stream}, c.cfg.Group, c.cfg.Consumer, id).Err(); err != nil {
		c.log.Warn("restarting the idle time of a failed entry failed", "id", id, "error", err)
	}
	due := time.Now().Add(retry)
	c.mu.Lock()
	if due.Before(c.wake) {
		c.wake = due
	}
	c.mu.Unlock()
}

// deadLetter calls OnDeadLetter, then moves the entry to the DLQ and
// acknowledges it in one script. If either fails the entry stays pending.
func (c *Consumer) deadLetter(ctx context.Context, m Message, reason string) {
	log := c.log.With("id", m.ID, "type", m.Type, "deliveries", m.Deliveries)
	if len(reason) > reasonMaxLen {
		reason = reason[:reasonMaxLen]
	}
	if c.cfg.OnDeadLetter != nil {
		if err := c.cfg.OnDeadLetter(ContextWithTraceparent(ctx, m.Traceparent), m, reason); err != nil {
			log.Error("dead-letter callback failed; entry stays pending", "error", err)
			c.failed(m.ID, c.cfg.Backoff(m.Deliveries))
			return
		}
	}
	rctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	dl := DeadLetter{
		OriginStream: m.Stream,
		OriginID:     m.ID,
		Type:         m.Type,
		Data:         m.Data,
		Traceparent:  m.Traceparent,
		Reason:       reason,
		Deliveries:   m.Deliveries,
		Group:        c.cfg.Group,
		Consumer:     c.cfg.Consumer,
		Time:         time.Now().UTC(),
	}
	args := append([]any{c.cfg.Group, c.cfg.Consumer, m.ID, c.cfg.MaxLen}, dl.values()...)
	id, err := deadLetterScript.Run(rctx, c.rdb, []string{m.Stream, c.cfg.DLQ}, args...).Text()
	switch {
	case isNil(err):
		log.Warn("entry to dead-letter is no longer pending with this consumer; leaving it")
	case err != nil:
		log.Error("moving entry to the DLQ failed; it stays pending", "error", err)
		c.failed(m.ID, c.cfg.Backoff(m.Deliveries))
	default:
		log.Error("entry moved to the DLQ", "dlq", c.cfg.DLQ, "dlq_id", id, "reason", reason)
		c.cfg.Metrics.observeDeadLetter(c.cfg.Stream, c.cfg.Group)
	}
}

// values is the XADD field list of a dead letter.
func (d DeadLetter) values() []any {
	return []any{
		FieldOriginStream, d.OriginStream,
		FieldOriginID, d.OriginID,
		FieldType, d.Type,
		FieldData, d.Data,
		FieldTraceparent, d.Traceparent,
		FieldReason, d.Reason,
		FieldDeliveries, strconv.FormatInt(d.Deliveries, 10),
		FieldGroup, d.Group,
		FieldConsumer, d.Consumer,
		FieldTime, d.Time.Format(time.RFC3339Nano),
	}
}
