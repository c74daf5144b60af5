// Command loadgen posts signed, realistic workflow_job deliveries (7-12 KB,
// each with its own X-GitHub-Delivery) to an ingress on this machine, at a
// fixed rate or as fast as a number of concurrent clients can, for a bounded
// count and duration, and prints what was accepted and how fast.
//
//	loadgen -url http://127.0.0.1:8080/webhook -secret S -concurrency 64 -count 200000 -duration 30s
//	loadgen -url http://127.0.0.1:8080/webhook -secret S -rate 5000 -duration 20s
//
// At a fixed rate the latency of a request is counted from the moment it was
// due, not from when a client was free to send it, so a server that falls
// behind shows it in the percentiles (no coordinated omission).
//
// Only loopback addresses are accepted as targets.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	url         string
	secret      string
	concurrency int
	rate        float64
	count       int64
	duration    time.Duration
	bodies      int
	timeout     time.Duration
	stdClient   bool
}

func run(args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080/webhook", "webhook URL (loopback only)")
	fs.StringVar(&o.secret, "secret", os.Getenv("RM_GITHUB_WEBHOOK_SECRET"), "webhook secret (default $RM_GITHUB_WEBHOOK_SECRET)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent clients (connections)")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second; 0 sends as fast as the clients can")
	fs.Int64Var(&o.count, "count", 100_000, "stop after this many requests")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "stop after this long")
	fs.IntVar(&o.bodies, "bodies", 512, "distinct prepared bodies to cycle through (each request varies one)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.BoolVar(&o.stdClient, "net-http", false, "send with net/http's client instead of the lean HTTP/1.1 client (more CPU per request)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := check(o); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := load(ctx, o)
	if err != nil {
		return err
	}
	r.print(out, o)
	if r.failed > 0 {
		return fmt.Errorf("%d of %d requests were not accepted", r.failed, r.sent)
	}
	return nil
}

func check(o options) error {
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("-url %q: not an http(s) URL", o.url)
	}
	if !loopback(u.Hostname()) {
		return fmt.Errorf("-url %q: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed", o.url)
	}
	switch {
	case o.secret == "":
		return errors.New("no secret: pass -secret or set RM_GITHUB_WEBHOOK_SECRET")
	case o.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case o.rate < 0:
		return errors.New("-rate must not be negative")
	case o.count < 1 || o.duration <= 0:
		return errors.New("-count and -duration bound the run: both must be positive")
	case o.bodies < 1:
		return errors.New("-bodies must be at least 1")
	}
	return nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// delivery is one prepared body and its signature.
type delivery struct {
	body []byte
	sig  string
}

// prepare builds the bodies once: the load generator must not spend the CPU
// the ingress is measured with. Every request still gets its own delivery id
// and its own body (the ingress answers a signed body it already accepted
// 200, unpublished): a variant of one of the prepared bodies, signed at the
// cost of a few SHA-256 blocks (webhooktest.Variants).
func prepare(o options) []*webhooktest.Variants {
	actions := []string{webhooktest.ActionQueued, webhooktest.ActionInProgress, webhooktest.ActionCompleted}
	labels := [][]string{{"self-hosted", "linux", "small"}, {"self-hosted", "linux", "x64", "large"}, {"self-hosted", "gpu"}}
	vs := make([]*webhooktest.Variants, o.bodies)
	for i := range vs {
		// 0 to 20 steps: bodies of 7 to 12 KB.
		b := webhooktest.Payload(actions[i%3], int64(50_000_000+i), labels[i%3], webhooktest.WithSteps(i%21))
		vs[i] = webhooktest.NewVariants(o.secret, b)
	}
	return vs
}

type result struct {
	sent, accepted, failed int64
	statuses               map[string]int64
	latencies              []time.Duration
	elapsed                time.Duration
	bytes                  int64
	// cpu is the CPU time (user+system) the load generator itself used.
	cpu time.Duration
}

func load(ctx context.Context, o options) (*result, error) {
	ds := prepare(o)
	cpu0 := cpuTime()
	prefix := make([]byte, 4)
	_, _ = rand.Read(prefix)
	runID := hex.EncodeToString(prefix)

	newSender, closeAll, err := senders(o)
	if err != nil {
		return nil, err
	}
	defer closeAll()

	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()

	// Tickets carry the time a request is due. Without a rate, every ticket
	// is due when a client takes it.
	tickets := make(chan time.Time, o.concurrency)
	go dispatch(ctx, o, tickets)

	var (
		mu        sync.Mutex
		res       = &result{statuses: map[string]int64{}}
		seq       atomic.Int64
		wg        sync.WaitGroup
		begin     = time.Now()
		perLatCap = int(min(o.count/int64(o.concurrency)+1, 1<<20))
	)
	for range o.concurrency {
		wg.Add(1)
		send := newSender()
		go func() {
			defer wg.Done()
			defer send.close()
			lat := make([]time.Duration, 0, perLatCap)
			statuses := map[string]int64{}
			var sent, accepted, failed, nbytes int64
			for due := range tickets {
				n := seq.Add(1)
				if due.IsZero() {
					due = time.Now()
				}
				id := runID + "-" + strconv.FormatInt(n, 10)
				var d delivery
				d.body, d.sig = ds[int(n)%len(ds)].Body(id)
				status := send.send(ctx, id, d)
				if status == "canceled" {
					break // the run ended with this request in flight: not counted
				}
				lat = append(lat, time.Since(due))
				sent++
				nbytes += int64(len(d.body))
				statuses[status]++
				if status == "200" || status == "202" {
					accepted++
				} else {
					failed++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.sent += sent
			res.accepted += accepted
			res.failed += failed
			res.bytes += nbytes
			res.latencies = append(res.latencies, lat...)
			for k, v := range statuses {
				res.statuses[k] += v
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(begin)
	res.cpu = cpuTime() - cpu0
	slices.Sort(res.latencies)
	if res.sent == 0 {
		return nil, fmt.Errorf("no request completed against %s", o.url)
	}
	return res, nil
}

// dispatch hands out o.count tickets, paced at o.rate when set, and closes
// the channel at the end of the count or of the run.
func dispatch(ctx context.Context, o options, tickets chan<- time.Time) {
	defer close(tickets)
	if o.rate == 0 {
		for range o.count {
			select {
			case tickets <- time.Time{}:
			case <-ctx.Done():
				return
			}
		}
		return
	}
	interval := time.Duration(float64(time.Second) / o.rate)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var issued int64
	for issued < o.count {
		// Issue every ticket due by now, each stamped with its own due time.
		due := start.Add(time.Duration(issued) * interval)
		for issued < o.count && !due.After(time.Now()) {
			select {
			case tickets <- due:
			case <-ctx.Done():
				return
			}
			issued++
			due = start.Add(time.Duration(issued) * interval)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// sender sends deliveries one at a time; each worker has its own.
type sender interface {
	// send posts one delivery and returns its status code, or the kind of error.
	send(ctx context.Context, id string, d delivery) string
	close()
}

// senders returns the constructor of each worker's sender, and what closes
// the shared resources.
func senders(o options) (func() sender, func(), error) {
	u, err := url.Parse(o.url)
	if err != nil {
		return nil, nil, fmt.Errorf("-url: %w", err)
	}
	if o.stdClient || u.Scheme != "http" {
		tr := &http.Transport{
			MaxIdleConns:        o.concurrency,
			MaxIdleConnsPerHost: o.concurrency,
			MaxConnsPerHost:     o.concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
		c := &netHTTPSender{client: &http.Client{Transport: tr, Timeout: o.timeout}, url: o.url}
		return func() sender { return c }, tr.CloseIdleConnections, nil
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	return func() sender {
		return &rawSender{addr: addr, host: u.Host, path: path, timeout: o.timeout}
	}, func() {}, nil
}

// netHTTPSender uses net/http's client, shared by every worker.
type netHTTPSender struct {
	client *http.Client
	url    string
}

func (*netHTTPSender) close() {}

func (s *netHTTPSender) send(ctx context.Context, id string, d delivery) string {
	return post(ctx, s.client, s.url, id, d)
}

// rawSender is a lean HTTP/1.1 client on one keep-alive connection, like
// wrk's: the request is one writev of prepared headers and the body, and the
// response is parsed only for its status, length and Connection header. It
// spends a fraction of net/http's CPU per request, which on a small machine
// is left to the server under test.
type rawSender struct {
	addr, host, path string
	timeout          time.Duration
	conn             net.Conn
	br               *bufio.Reader
	head             []byte
}

func (s *rawSender) close() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn, s.br = nil, nil
	}
}

func (s *rawSender) send(ctx context.Context, id string, d delivery) string {
	if ctx.Err() != nil {
		return "canceled"
	}
	if s.conn == nil {
		conn, err := net.DialTimeout("tcp", s.addr, s.timeout)
		if err != nil {
			return errorKind(err)
		}
		s.conn, s.br = conn, bufio.NewReaderSize(conn, 4096)
	}
	_ = s.conn.SetDeadline(time.Now().Add(s.timeout))
	h := append(s.head[:0], "POST "...)
	h = append(h, s.path...)
	h = append(h, " HTTP/1.1\r\nHost: "...)
	h = append(h, s.host...)
	h = append(h, "\r\nUser-Agent: GitHub-Hookshot/loadgen\r\nContent-Type: application/json\r\n"...)
	h = append(h, webhooktest.HeaderEvent+": workflow_job\r\n"...)
	h = append(h, webhooktest.HeaderDelivery+": "...)
	h = append(h, id...)
	h = append(h, "\r\n"+webhooktest.HeaderSignature256+": "...)
	h = append(h, d.sig...)
	h = append(h, "\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(len(d.body)), 10)
	h = append(h, "\r\n\r\n"...)
	s.head = h
	bufs := net.Buffers{h, d.body}
	if _, err := bufs.WriteTo(s.conn); err != nil {
		s.close()
		return errorKind(err)
	}
	status, keep, err := readResponse(s.br)
	if err != nil {
		s.close()
		return errorKind(err)
	}
	if !keep {
		s.close()
	}
	return strconv.Itoa(status)
}

// readResponse reads one HTTP/1.1 response and returns its status code and
// whether the connection stays open.
func readResponse(br *bufio.Reader) (status int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	keep = line[7] == '1'
	length, chunked := int64(0), false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("malformed header %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	if chunked {
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return 0, false, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(line, []byte(";"), 2)[0])), 16, 64)
			if err != nil {
				return 0, false, fmt.Errorf("malformed chunk size %q", line)
			}
			if _, err := br.Discard(int(size) + 2); err != nil { // the chunk and its CRLF
				return 0, false, err
			}
			if size == 0 {
				return status, keep, nil // no trailers from the ingress
			}
		}
	}
	if _, err := br.Discard(int(length)); err != nil {
		return 0, false, err
	}
	return status, keep, nil
}

func errorKind(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "transport-error"
}

// post sends one delivery with net/http and returns its status code, or the kind of error.
func post(ctx context.Context, c *http.Client, u, id string, d delivery) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(d.body))
	if err != nil {
		return "request-error"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/loadgen")
	req.Header.Set(webhooktest.HeaderEvent, "workflow_job")
	req.Header.Set(webhooktest.HeaderDelivery, id)
	req.Header.Set(webhooktest.HeaderSignature256, d.sig)
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "canceled"
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "transport-error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}

func (r *result) print(w io.Writer, o options) {
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
	}
	mode := "max"
	if o.rate > 0 {
		mode = fmt.Sprintf("%.0f/s", o.rate)
	}
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "target     %s\n", o.url)
	fmt.Fprintf(w, "mode       rate %s, concurrency %d\n", mode, o.concurrency)
	fmt.Fprintf(w, "sent       %d in %.2fs (%.0f/s), %.1f KB per body on average\n", r.sent, secs, float64(r.sent)/secs, float64(r.bytes)/float64(r.sent)/1024)
	fmt.Fprintf(w, "accepted   %d (%.0f/s)\n", r.accepted, float64(r.accepted)/secs)
	fmt.Fprintf(w, "failed     %d\n", r.failed)
	keys := make([]string, 0, len(r.statuses))
	for k := range r.statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "status     %s: %d\n", k, r.statuses[k])
	}
	fmt.Fprintf(w, "loadgen    %.2fs CPU, %.0fµs per request\n", r.cpu.Seconds(), float64(r.cpu.Microseconds())/float64(r.sent))
	fmt.Fprintf(w, "latency    p50 %s  p90 %s  p99 %s  max %s\n",
		round(pct(.50)), round(pct(.90)), round(pct(.99)), round(pct(1)))
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// cpuTime is the user and system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
