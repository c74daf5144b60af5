package fakegithub

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// HookshotUserAgent is the User-Agent of webhook deliveries.
const HookshotUserAgent = "GitHub-Hookshot/fa2b6e1"

// Delivery is one recorded webhook delivery, as the deliveries API shows it.
type Delivery struct {
	ID           int64
	GUID         string
	DeliveredAt  time.Time
	Redelivery   bool
	Duration     time.Duration
	Status       string // "OK", "Invalid HTTP Response: 500", "failed to connect", "timed out"
	StatusCode   int    // 0 when no HTTP response was received
	Event        string
	Action       string
	RepositoryID int64
	Payload      []byte
	Headers      map[string]string // request headers sent
}

// Success reports whether the receiver answered 2xx.
func (d Delivery) Success() bool { return d.StatusCode >= 200 && d.StatusCode < 300 }

type outgoing struct {
	guid       string
	event      string
	action     string
	repoID     int64
	jobID      int64 // workflow_job only, for the log
	body       []byte
	redelivery bool
}

// logAttrs are the attributes that name o in the log, then extra.
func (o *outgoing) logAttrs(extra ...any) []any {
	a := []any{"event", o.event, "action", o.action, "delivery", o.guid}
	if o.jobID != 0 {
		a = append(a, "job_id", o.jobID)
	}
	return append(append(a, extra...), "redelivery", o.redelivery)
}

func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x10 // GitHub's GUIDs are time-based (v1) UUIDs
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// enqueueJobEventLocked queues a workflow_job webhook for the job's current
// state, built by webhooktest.
func (s *Server) enqueueJobEventLocked(j *job) {
	d := s.payloadJob(j)
	if id, installed := s.installationOf(j.repo.owner); installed {
		d.InstallationID = id
	}
	s.pushLocked(&outgoing{guid: newGUID(), event: "workflow_job", action: d.Action, repoID: j.repo.id, jobID: j.id, body: d.JSON()})
}

func (s *Server) pushLocked(o *outgoing) {
	if s.closed {
		return
	}
	s.outbox = append(s.outbox, o)
	select {
	case s.outboxSignal <- struct{}{}:
	default:
	}
}

// SendPing sends a ping webhook, as GitHub does when a hook is created.
func (s *Server) SendPing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	body := webhooktest.Hook{
		ID: s.opts.HookID, AppID: s.opts.AppID, URL: s.opts.WebhookURL, Secret: s.opts.WebhookSecret != "", CreatedAt: s.opts.Now(),
	}.PingJSON()
	s.pushLocked(&outgoing{guid: newGUID(), event: "ping", body: body})
}

// popOutgoing waits for the next webhook to send, up to wait (0: forever).
// It returns ok=false when the server is closed.
func (s *Server) popOutgoing(wait time.Duration) (*outgoing, bool) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		s.mu.Lock()
		if len(s.outbox) > 0 {
			o := s.outbox[0]
			s.outbox[0] = nil
			s.outbox = s.outbox[1:]
			s.sending++
			s.mu.Unlock()
			return o, true
		}
		s.mu.Unlock()
		select {
		case <-s.closeCh:
			return nil, false
		case <-s.outboxSignal:
		case <-timeout:
			return nil, true
		}
	}
}

// sendLoop is the one goroutine that delivers webhooks, in order, one at a time,
// applying the delivery faults. Like GitHub, it never retries a failed delivery.
func (s *Server) sendLoop() {
	defer s.wg.Done()
	var held *outgoing // reorder fault: sent after the next one
	for {
		wait := time.Duration(0)
		if held != nil {
			wait = time.Second
		}
		o, ok := s.popOutgoing(wait)
		if !ok {
			return
		}
		if o == nil { // nothing came after the held one: send it anyway
			s.deliverWithFaults(held)
			held = nil
			continue
		}
		s.mu.Lock()
		f := s.faults
		reorder := held == nil && !o.redelivery && f.Reorder > 0 && s.rng.Float64() < f.Reorder
		if reorder {
			s.stats.faults["reorder"]++
		}
		s.mu.Unlock()
		if f.DelayMS > 0 {
			select {
			case <-time.After(time.Duration(f.DelayMS) * time.Millisecond):
			case <-s.closeCh:
				return
			}
		}
		if reorder {
			held = o
			continue
		}
		s.deliverWithFaults(o)
		if held != nil {
			s.deliverWithFaults(held)
			held = nil
		}
	}
}

// deliverWithFaults sends o, or not, as the faults in force say.
func (s *Server) deliverWithFaults(o *outgoing) {
	defer func() {
		s.mu.Lock()
		s.sending--
		s.mu.Unlock()
	}()
	s.mu.Lock()
	f := s.faults
	lose := f.Lose > 0 && f.loses(o.action) && s.rng.Float64() < f.Lose
	drop := !lose && f.Drop > 0 && s.rng.Float64() < f.Drop
	dup := f.Duplicate > 0 && s.rng.Float64() < f.Duplicate
	switch {
	case lose:
		s.stats.faults["lose"]++
		s.stats.webhooksDropped++
	case drop:
		s.stats.faults["drop"]++
		s.stats.webhooksDropped++
	}
	if dup && !lose && !drop {
		s.stats.faults["duplicate"]++
	}
	s.mu.Unlock()
	switch {
	case lose: // never sent, never recorded: only the log knows
		s.log.Warn("webhook lost (fault)", o.logAttrs()...)
		return
	case drop:
		s.record(o, s.headers(o), time.Now(), 0, "failed to connect", 0, nil, "")
		return
	}
	s.deliver(o)
	if dup {
		s.deliver(o)
	}
}

func (s *Server) headers(o *outgoing) map[string]string {
	h := map[string]string{
		"Accept":                                 "*/*",
		"Content-Type":                           "application/json",
		"User-Agent":                             HookshotUserAgent,
		"X-GitHub-Delivery":                      o.guid,
		"X-GitHub-Event":                         o.event,
		"X-GitHub-Hook-ID":                       strconv.FormatInt(s.opts.HookID, 10),
		"X-GitHub-Hook-Installation-Target-ID":   strconv.FormatInt(s.opts.AppID, 10),
		"X-GitHub-Hook-Installation-Target-Type": "integration",
	}
	if s.opts.WebhookSecret != "" {
		m1 := hmac.New(sha1.New, []byte(s.opts.WebhookSecret))
		m1.Write(o.body)
		h["X-Hub-Signature"] = "sha1=" + hex.EncodeToString(m1.Sum(nil))
		h[webhooktest.HeaderSignature256] = webhooktest.Sign(s.opts.WebhookSecret, o.body)
	}
	return h
}

// deliver POSTs one webhook and records the outcome.
func (s *Server) deliver(o *outgoing) {
	hdr := s.headers(o)
	start := time.Now()
	if s.opts.WebhookURL == "" {
		s.record(o, hdr, start, 0, "failed to connect", 0, nil, "")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WebhookTimeout)
	defer cancel()
	go func() { // Close aborts a delivery in flight
		select {
		case <-s.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.WebhookURL, bytes.NewReader(o.body))
	if err != nil {
		s.record(o, hdr, start, 0, "failed to connect", 0, nil, "")
		return
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.httpClient.Do(req)
	if err != nil {
		status := "failed to connect"
		var ue *url.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ue) && ue.Timeout()) {
			status = "timed out"
		}
		s.record(o, hdr, start, time.Since(start), status, 0, nil, "")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	status := "OK"
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		status = fmt.Sprintf("Invalid HTTP Response: %d", resp.StatusCode)
	}
	respHdr := map[string]string{}
	for k := range resp.Header {
		respHdr[strings.ToLower(k)] = resp.Header.Get(k)
	}
	s.record(o, hdr, start, time.Since(start), status, resp.StatusCode, respHdr, string(body))
}

type delivery struct {
	Delivery
	jobID       int64
	url         string
	respHeaders map[string]string
	respBody    string
}

// again is the redelivery of d: the same GUID and payload, redelivery true.
func (d *delivery) again() *outgoing {
	return &outgoing{guid: d.GUID, event: d.Event, action: d.Action, repoID: d.RepositoryID, jobID: d.jobID, body: d.Payload, redelivery: true}
}

func (s *Server) record(o *outgoing, hdr map[string]string, at time.Time, d time.Duration, status string, code int, respHdr map[string]string, respBody string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dl := &delivery{
		Delivery: Delivery{
			ID: s.newIDLocked(), GUID: o.guid, DeliveredAt: at, Redelivery: o.redelivery, Duration: d,
			Status: status, StatusCode: code, Event: o.event, Action: o.action, RepositoryID: o.repoID,
			Payload: o.body, Headers: hdr,
		},
		jobID:       o.jobID,
		url:         s.opts.WebhookURL,
		respHeaders: respHdr,
		respBody:    respBody,
	}
	s.deliveries = append(s.deliveries, dl)
	if over := len(s.deliveries) - s.opts.MaxDeliveries; over > 0 {
		clear(s.deliveries[:over])
		s.deliveries = s.deliveries[over:]
	}
	if dl.Success() {
		s.stats.webhooksSent++
	} else {
		s.stats.webhooksFailed++
	}
	level := slog.LevelInfo
	if !dl.Success() {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "webhook delivery", o.logAttrs("status_code", code, "status", status)...)
}

// Deliveries returns every recorded delivery, oldest first.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.deliveries))
	for i, d := range s.deliveries {
		out[i] = d.Delivery
	}
	return out
}

// Redeliver sends a recorded delivery again: a new delivery with the same GUID
// and redelivery true, like POST /app/hook/deliveries/{id}/attempts.
func (s *Server) Redeliver(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deliveries {
		if d.ID == id {
			s.pushLocked(d.again())
			return nil
		}
	}
	return fmt.Errorf("redeliver %d: %w", id, ErrNotFound)
}

func nullable[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

func (s *Server) deliverySummary(d *delivery) map[string]any {
	return map[string]any{
		"id":              d.ID,
		"guid":            d.GUID,
		"delivered_at":    ts(d.DeliveredAt),
		"redelivery":      d.Redelivery,
		"duration":        d.Duration.Seconds(),
		"status":          d.Status,
		"status_code":     d.StatusCode,
		"event":           d.Event,
		"action":          nullable(d.Action),
		"installation_id": nullable(s.deliveryInstallation(d)),
		"repository_id":   nullable(d.RepositoryID),
		"throttled_at":    nil,
	}
}

// deliveryInstallation is the installation of the delivery's repository
// owner (0: none); s.mu is held.
func (s *Server) deliveryInstallation(d *delivery) int64 {
	if len(s.opts.Installations) == 0 {
		return s.opts.InstallationID
	}
	for _, repo := range s.repos {
		if repo.id == d.RepositoryID {
			id, _ := s.installationOf(repo.owner)
			return id
		}
	}
	return 0
}

// listDeliveries: GET /app/hook/deliveries, newest first, cursor pagination.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	perPage := 30
	if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	var before int64 = -1
	if c := q.Get("cursor"); c != "" {
		v, ok := strings.CutPrefix(c, "v1_")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			writeValidation(w, "Invalid cursor")
			return
		}
		before = n
	}
	status := q.Get("status")
	if status != "" && status != "success" && status != "failure" {
		writeValidation(w, "Invalid request.\n\n\"status\" must be success or failure.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	items := []map[string]any{}
	var last int64
	more := false
	for _, d := range slices.Backward(s.deliveries) {
		if before >= 0 && d.ID >= before {
			continue
		}
		if (status == "success" && !d.Success()) || (status == "failure" && d.Success()) {
			continue
		}
		if len(items) == perPage {
			more = true
			break
		}
		items = append(items, s.deliverySummary(d))
		last = d.ID
	}
	if more {
		nq := url.Values{}
		nq.Set("per_page", strconv.Itoa(perPage))
		nq.Set("cursor", fmt.Sprintf("v1_%d", last))
		if status != "" {
			nq.Set("status", status)
		}
		w.Header().Set("Link", fmt.Sprintf("<%s%s?%s>; rel=\"next\"", baseURL(r), r.URL.Path, nq.Encode()))
	}
	writeJSON(w, http.StatusOK, items)
}

func (s *Server) deliveryByIDLocked(r *http.Request) *delivery {
	id, err := strconv.ParseInt(r.PathValue("delivery_id"), 10, 64)
	if err != nil {
		return nil
	}
	for _, d := range s.deliveries {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// getDelivery: GET /app/hook/deliveries/{delivery_id}.
func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveryByIDLocked(r)
	if d == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	m := s.deliverySummary(d)
	m["url"] = d.url
	var payload map[string]any
	_ = json.Unmarshal(d.Payload, &payload)
	reqHdr := map[string]any{}
	for k, v := range d.Headers {
		reqHdr[k] = v
	}
	m["request"] = map[string]any{"headers": reqHdr, "payload": payload}
	var respHdr, respBody any
	if d.respHeaders != nil {
		h := map[string]any{}
		for k, v := range d.respHeaders {
			h[k] = v
		}
		respHdr, respBody = h, d.respBody
	}
	m["response"] = map[string]any{"headers": respHdr, "payload": respBody}
	writeJSON(w, http.StatusOK, m)
}

// redeliver: POST /app/hook/deliveries/{delivery_id}/attempts.
func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.deliveryByIDLocked(r)
	if d == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.pushLocked(d.again())
	s.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]any{})
}
