// Package webhook is the ingress's only public endpoint: it verifies GitHub
// webhook deliveries, drops replays, keeps what the scheduler needs of each
// workflow_job and publishes it to {P}:events (docs/design.md §1, §3, §6).
//
// A request goes through these steps, the first that decides answers. The
// headers are judged before a byte of the body is read, and at most
// MaxConcurrent requests read (and hold) a body at a time:
//
//  1. Content-Length larger than MaxBody: 413, nothing read;
//  2. X-Hub-Signature-256 missing or malformed: 401, nothing read;
//  3. no read slot free within QueueWait: 503 with Retry-After, nothing read;
//  4. body larger than MaxBody (chunked): 413, nothing read past the limit;
//     body not complete within BodyTimeout: 408;
//  5. X-Hub-Signature-256 not the HMAC-SHA256 of the raw body under the
//     current or the previous secret: 401;
//  6. event ping: 200;
//  7. any event other than workflow_job: 202, nothing published;
//  8. workflow_job without a valid X-GitHub-Delivery, or whose body is not
//     JSON or lacks action or workflow_job.id: 400;
//  9. action waiting or unknown: 202, nothing published;
//  10. queued, in_progress, completed: the replay guards (delivery id and
//     SHA-256 of the signed body) and the XADD run in one Lua script; 202 when
//     published, 200 when the delivery or the same body was already accepted;
//  11. Redis unavailable: 503 (GitHub records the failure; it can be redelivered).
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// Header names of a GitHub delivery.
const (
	HeaderEvent        = "X-GitHub-Event"
	HeaderDelivery     = "X-GitHub-Delivery"
	HeaderSignature256 = "X-Hub-Signature-256"
)

// DefaultTimeout bounds the Redis call of one request.
const DefaultTimeout = 2 * time.Second

// maxDeliveryLen bounds X-GitHub-Delivery (a GUID is 36 characters).
const maxDeliveryLen = 64

// Defaults of the bound on the bodies read at once.
const (
	// DefaultMaxConcurrent requests may read a body at a time: at most
	// DefaultMaxConcurrent x max_body_bytes (64 MiB at the default 1 MiB) of
	// bodies are in memory, whatever the number of connections.
	DefaultMaxConcurrent = 64
	// DefaultQueueWait is how long a request waits for a read slot before it
	// is answered 503: a burst of genuine deliveries (a matrix queued at
	// once) waits a moment instead of failing; a flood is refused quickly.
	// A waiting request holds no body memory.
	DefaultQueueWait = time.Second
	// DefaultBodyTimeout bounds the read of a body once it has a slot:
	// GitHub sends its 7-12 KB at once, so a body still incomplete after
	// this is a slow client, cut so that it frees its slot.
	DefaultBodyTimeout = 5 * time.Second
)

// Options are the dependencies of a Handler.
type Options struct {
	// Keys names the delivery guard and the events stream. Required.
	Keys keys.Keys
	// Redis receives the events. Required.
	Redis redis.UniversalClient
	// Secrets: WebhookSecret is required; WebhookSecretPrevious, when set, is
	// also accepted (rotation). Other secrets are not used.
	Secrets config.Secrets
	// MaxBody is the largest body accepted (default config.DefaultMaxBodyBytes).
	MaxBody int64
	// MaxConcurrent bounds the requests reading or holding a body at once
	// (default DefaultMaxConcurrent).
	MaxConcurrent int
	// QueueWait is how long a request waits for one of the MaxConcurrent
	// slots before a 503 (default DefaultQueueWait).
	QueueWait time.Duration
	// BodyTimeout bounds the read of the body once the request has a slot
	// (default DefaultBodyTimeout). The server's ReadTimeout still applies.
	BodyTimeout time.Duration
	// MaxLen trims {P}:events with MAXLEN ~ (default config.DefaultStreamMaxLen).
	MaxLen int64
	// Timeout bounds the Redis call of one request (default DefaultTimeout).
	Timeout time.Duration
	// Metrics registers the ingress metrics; nil registers nothing.
	Metrics prometheus.Registerer
	// Logger receives one line per request (default slog.Default()).
	Logger *slog.Logger
	// TracerProvider starts the server span of each request (default: otel's global).
	TracerProvider trace.TracerProvider
	// Now is the clock of received_at (default time.Now).
	Now func() time.Time
}

// Handler serves POST /webhook. It is safe for concurrent use.
type Handler struct {
	keys    keys.Keys
	rdb     redis.UniversalClient
	macs    []*sync.Pool // one pool of HMAC-SHA256 states per accepted secret
	maxBody int64
	maxLen  int64
	timeout time.Duration
	// slots holds one token per request reading or holding a body.
	slots       chan struct{}
	queueWait   time.Duration
	bodyTimeout time.Duration
	metrics     *metrics
	log         *slog.Logger
	tracer      trace.Tracer
	now         func() time.Time
}

// NewHandler checks the options and returns the handler.
func NewHandler(o Options) (*Handler, error) {
	if o.Redis == nil {
		return nil, errors.New("webhook handler: no Redis client")
	}
	if o.Keys.Prefix() == "" {
		return nil, errors.New("webhook handler: no key names")
	}
	if !o.Secrets.WebhookSecret.IsSet() {
		// Never accept unsigned deliveries: a missing secret is a configuration error.
		return nil, errors.New("webhook handler: RM_GITHUB_WEBHOOK_SECRET is not set")
	}
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	h := &Handler{
		keys:        o.Keys,
		rdb:         o.Redis,
		maxBody:     cmp.Or(o.MaxBody, config.DefaultMaxBodyBytes),
		maxLen:      cmp.Or(o.MaxLen, config.DefaultStreamMaxLen),
		timeout:     cmp.Or(o.Timeout, DefaultTimeout),
		slots:       make(chan struct{}, cmp.Or(o.MaxConcurrent, DefaultMaxConcurrent)),
		queueWait:   cmp.Or(o.QueueWait, DefaultQueueWait),
		bodyTimeout: cmp.Or(o.BodyTimeout, DefaultBodyTimeout),
		metrics:     m,
		log:         cmp.Or(o.Logger, slog.Default()),
		tracer:      tp.Tracer("github.com/runner-manager/runner-manager/services/ingress/internal/webhook"),
		now:         o.Now,
	}
	if h.now == nil {
		h.now = time.Now
	}
	for _, s := range []config.Secret{o.Secrets.WebhookSecret, o.Secrets.WebhookSecretPrevious} {
		if !s.IsSet() {
			continue
		}
		key := []byte(s.Value())
		h.macs = append(h.macs, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	return h, nil
}

// Echo returns the handler as an echo handler, for app.Routes.
func (h *Handler) Echo() echo.HandlerFunc { return echo.WrapHandler(h) }

// result is what one request came to, for the response, the metrics and the log.
type result struct {
	status   int
	outcome  string
	event    string
	delivery string
	action   string
	jobID    int64
	bytes    int
	entryID  string
	err      error
	// unread: the body was not read to its end; the connection is closed
	// after the answer instead of draining what the client still sends.
	unread bool
}

// ServeHTTP handles one delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := h.tracer.Start(ctx, "POST /webhook", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	if !span.SpanContext().IsValid() {
		// Tracing is off: still give the event a trace id, so that the lines
		// of every service about this delivery can be joined.
		ctx = trace.ContextWithSpanContext(ctx, newSpanContext())
	}

	res := h.handle(ctx, w, r)
	switch res.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	if res.unread {
		// Otherwise net/http reads up to 256 KB of the rest of the body
		// before it sends the answer: a slow client would hold it.
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(res.status)
	_, _ = io.WriteString(w, res.outcome+"\n")

	h.metrics.count(res.event, res.outcome)
	h.record(ctx, span, &res, time.Since(start))
}

func (h *Handler) handle(ctx context.Context, w http.ResponseWriter, r *http.Request) result {
	res := result{
		event:    truncate(r.Header.Get(HeaderEvent)),
		delivery: truncate(r.Header.Get(HeaderDelivery)),
	}
	if r.Method != http.MethodPost {
		return res.done(http.StatusMethodNotAllowed, OutcomeBadRequest, nil)
	}

	// 1, 2. The headers, before reading anything: the size announced and the
	// form of the signature.
	res.unread = r.ContentLength != 0
	if r.ContentLength > h.maxBody {
		return res.done(http.StatusRequestEntityTooLarge, OutcomeTooLarge, nil)
	}
	want, ok := parseSignature(r.Header.Get(HeaderSignature256))
	if !ok {
		return res.done(http.StatusUnauthorized, OutcomeUnauthorized, nil)
	}

	// 3. A read slot: memory is held only by the requests that have one.
	if !h.acquire(ctx) {
		return res.done(http.StatusServiceUnavailable, OutcomeBusy, errors.New("no read slot free"))
	}
	defer h.release()

	// 4. The body, in a buffer that grows with what arrives (never with what
	// Content-Length announces), within BodyTimeout.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.bodyTimeout)) // unsupported only in tests
	buf := getBuffer()
	defer putBuffer(buf)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return res.done(http.StatusRequestEntityTooLarge, OutcomeTooLarge, nil)
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return res.done(http.StatusRequestTimeout, OutcomeBadRequest, fmt.Errorf("read body: %w", err))
		}
		return res.done(http.StatusBadRequest, OutcomeBadRequest, fmt.Errorf("read body: %w", err))
	}
	res.unread = false
	body := buf.Bytes()
	res.bytes = len(body)
	h.metrics.body.Observe(float64(len(body)))

	// 5. Signature, before believing anything in the request.
	if !h.verify(body, &want) {
		return res.done(http.StatusUnauthorized, OutcomeUnauthorized, nil)
	}

	// 6, 7. Events.
	switch res.event {
	case eventPing:
		return res.done(http.StatusOK, OutcomePing, nil)
	case eventWorkflowJob:
	default:
		return res.done(http.StatusAccepted, OutcomeIgnoredEvent, nil)
	}

	// 8. A workflow_job that can be published.
	if !validDelivery(res.delivery) {
		return res.done(http.StatusBadRequest, OutcomeBadRequest, errors.New("missing or invalid X-GitHub-Delivery"))
	}
	body, err = jsonBody(r.Header.Get("Content-Type"), body)
	if err != nil {
		return res.done(http.StatusBadRequest, OutcomeBadRequest, err)
	}
	p, err := decode(body)
	if err != nil {
		return res.done(http.StatusBadRequest, OutcomeBadRequest, err)
	}
	res.action, res.jobID = truncate(p.Action), p.WorkflowJob.ID

	// 9. Only the actions the scheduler acts on.
	switch p.Action {
	case "queued", "in_progress", "completed":
	default:
		return res.done(http.StatusAccepted, OutcomeIgnoredAction, nil)
	}

	// 10. Replay guards and XADD, atomically. The body guard is the SHA-256
	// of the raw signed body: GitHub signs the body, not the delivery id.
	values, err := stream.Values(ctx, stream.TypeWorkflowJob, p.event(res.delivery, h.now()))
	if err != nil {
		return res.done(http.StatusInternalServerError, OutcomeUnavailable, err)
	}
	// A client that hangs up must not cut the script short: the answer would
	// be unknown. The call has its own deadline instead (go-redis applies it
	// to the socket when the client has ContextTimeoutEnabled; otherwise its
	// ReadTimeout bounds the call).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	defer cancel()
	t := time.Now()
	sum := sha256.Sum256(buf.Bytes())
	g := guard{
		delivery: h.keys.Delivery(res.delivery),
		body:     h.keys.Body(hex.EncodeToString(sum[:])),
		guid:     res.delivery,
	}
	id, err := publish(rctx, h.rdb, g, h.keys.Events(), h.maxLen, values)
	h.metrics.publish.Observe(time.Since(t).Seconds())
	switch {
	case errors.Is(err, errDuplicate):
		return res.done(http.StatusOK, OutcomeDuplicate, nil)
	case errors.Is(err, errDuplicateBody):
		// A signed body already accepted under another delivery id: a
		// replay, or the same event from a second hook. 200, so that
		// nothing GitHub sends is ever shown as failed.
		return res.done(http.StatusOK, OutcomeDuplicateBody, nil)
	case err != nil:
		// 11. GitHub records the failure; the delivery can be redelivered.
		return res.done(http.StatusServiceUnavailable, OutcomeUnavailable, err)
	}
	res.entryID = id
	return res.done(http.StatusAccepted, OutcomePublished, nil)
}

func (r result) done(status int, outcome string, err error) result {
	r.status, r.outcome, r.err = status, outcome, err
	return r
}

// record writes the request's log line and ends its span. Neither the body
// nor the signature is ever logged.
func (h *Handler) record(ctx context.Context, span trace.Span, res *result, d time.Duration) {
	level := slog.LevelInfo
	switch {
	case res.status >= 500:
		level = slog.LevelError
	case res.status >= 400:
		level = slog.LevelWarn
	}
	if h.log.Enabled(ctx, level) {
		attrs := make([]slog.Attr, 0, 12)
		attrs = append(attrs,
			slog.String("delivery", res.delivery),
			slog.String("event", res.event),
			slog.String("outcome", res.outcome),
			slog.Int("status", res.status),
			slog.Duration("duration", d),
			slog.Int("bytes", res.bytes),
		)
		if res.action != "" {
			attrs = append(attrs, slog.String("action", res.action), slog.Int64("job_id", res.jobID))
		}
		if res.entryID != "" {
			attrs = append(attrs, slog.String("entry", res.entryID))
		}
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
		}
		if res.err != nil {
			attrs = append(attrs, slog.String("error", res.err.Error()))
		}
		h.log.LogAttrs(ctx, level, "webhook", attrs...)
	}
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("http.request.method", http.MethodPost),
			attribute.Int("http.response.status_code", res.status),
			attribute.String("github.delivery", res.delivery),
			attribute.String("github.event", res.event),
			attribute.String("runner_manager.outcome", res.outcome),
		)
		if res.jobID != 0 {
			span.SetAttributes(attribute.String("github.action", res.action), attribute.Int64("github.workflow_job.id", res.jobID))
		}
		if res.status >= 500 {
			span.SetStatus(codes.Error, res.outcome)
			if res.err != nil {
				span.RecordError(res.err)
			}
		}
	}
}

// acquire takes a read slot, waiting at most queueWait; false when none came
// free (or the client went away).
func (h *Handler) acquire(ctx context.Context) bool {
	select {
	case h.slots <- struct{}{}:
	default:
		t := time.NewTimer(h.queueWait)
		defer t.Stop()
		select {
		case h.slots <- struct{}{}:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	h.metrics.reading.Inc()
	return true
}

func (h *Handler) release() {
	h.metrics.reading.Dec()
	<-h.slots
}

// parseSignature returns the digest of an X-Hub-Signature-256 value, which
// must be "sha256=" and 64 hex digits.
func parseSignature(sig string) (want [sha256.Size]byte, ok bool) {
	const prefix = "sha256="
	if len(sig) != len(prefix)+2*sha256.Size || sig[:len(prefix)] != prefix {
		return want, false
	}
	if _, err := hex.Decode(want[:], []byte(sig[len(prefix):])); err != nil {
		return want, false
	}
	return want, true
}

// verify tells whether want is the HMAC-SHA256 of body under one of the
// secrets, comparing in constant time.
func (h *Handler) verify(body []byte, want *[sha256.Size]byte) bool {
	ok := false
	var sum [sha256.Size]byte
	for _, pool := range h.macs {
		m := pool.Get().(hash.Hash)
		m.Reset()
		m.Write(body)
		// Every secret is tried, whether or not an earlier one matched.
		if hmac.Equal(m.Sum(sum[:0]), want[:]) {
			ok = true
		}
		pool.Put(m)
	}
	return ok
}

// jsonBody returns the JSON document of a delivery: the body itself, or the
// "payload" field of a webhook configured with content type
// application/x-www-form-urlencoded.
func jsonBody(contentType string, body []byte) ([]byte, error) {
	if contentType == "" || contentType == "application/json" {
		return body, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		// url's error quotes the body: say only what failed.
		return nil, errors.New("form body is not URL-encoded")
	}
	return []byte(form.Get("payload")), nil
}

// validDelivery accepts GitHub's GUIDs: letters, digits and dashes.
func validDelivery(s string) bool {
	if s == "" || len(s) > maxDeliveryLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// truncate bounds what a caller-chosen header may put into a log line.
func truncate(s string) string {
	if len(s) > maxDeliveryLen {
		return s[:maxDeliveryLen] + "…(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}

func newSpanContext() trace.SpanContext {
	var tid trace.TraceID
	var sid trace.SpanID
	for tid == (trace.TraceID{}) {
		putUint64(tid[:8], rand.Uint64())
		putUint64(tid[8:], rand.Uint64())
	}
	for sid == (trace.SpanID{}) {
		putUint64(sid[:], rand.Uint64())
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// Body buffers are pooled: a delivery is 7-12 KB and nothing keeps a
// reference to the body once the request is answered (the decoded strings
// are copies). A buffer grows with the bytes that arrive, never with the
// Content-Length a client announces: announcing 1 MiB and sending one byte
// costs one small buffer, not 1 MiB.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer: larger buffers (rare bodies) go back to the GC.
const maxPooledBuffer = 64 << 10

func getBuffer() *bytes.Buffer {
	b := buffers.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		buffers.Put(b)
	}
}
