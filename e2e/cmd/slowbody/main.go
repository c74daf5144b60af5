// Command slowbody measures what slow-body connections cost a running
// ingress (docs/benchmarks.md, "Ingress: slow bodies"): it opens -conns
// connections to -url, each sending the headers of a webhook that announces
// -announce bytes with a well-formed (wrong) X-Hub-Signature-256 and then a
// single byte, and reads the ingress's resident memory (/proc/<pid>/status)
// before, while they are held, and its peak (VmHWM), until every connection
// is answered or closed (at most -deadline). Loopback only.
//
//	slowbody -url http://127.0.0.1:8080/webhook -pid 1234 -conns 300
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	var (
		rawURL   = flag.String("url", "", "the ingress's webhook URL (loopback)")
		pid      = flag.Int("pid", 0, "the ingress's process id, for /proc/<pid>/status")
		conns    = flag.Int("conns", 100, "slow connections to hold (at most 5000)")
		announce = flag.Int("announce", 1<<20, "Content-Length each one announces")
		hold     = flag.Duration("hold", 500*time.Millisecond, "how long resident memory is sampled once every connection is open")
		deadline = flag.Duration("deadline", 30*time.Second, "how long to wait for the answers")
	)
	flag.Parse()
	if err := run(*rawURL, *pid, *conns, *announce, *hold, *deadline); err != nil {
		fmt.Fprintln(os.Stderr, "slowbody:", err)
		os.Exit(1)
	}
}

func run(rawURL string, pid, n, announce int, hold, deadline time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("-url %q: want http://<loopback>:<port>/webhook", rawURL)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: loopback only", rawURL)
	}
	if pid <= 0 || n < 1 || n > 5000 || deadline <= 0 || deadline > 5*time.Minute {
		return errors.New("-pid is required; -conns in 1..5000; -deadline in (0, 5m]")
	}
	rss0, err := status(pid, "VmRSS")
	if err != nil {
		return err
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"X-GitHub-Event: workflow_job\r\nX-GitHub-Delivery: slowbody\r\nX-Hub-Signature-256: sha256=%s\r\n"+
		"Content-Length: %d\r\n\r\n{", u.Path, u.Host, strings.Repeat("0", 64), announce)

	start := time.Now()
	cs := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range cs {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			return fmt.Errorf("connection %d: %w", len(cs)+1, err)
		}
		cs = append(cs, c)
		if _, err := io.WriteString(c, head); err != nil {
			return fmt.Errorf("connection %d: %w", len(cs), err)
		}
	}
	opened := time.Since(start)

	// Answers are read in the background while the memory is sampled.
	var (
		mu       sync.Mutex
		statuses = map[string]int{}
		last     time.Duration
		wg       sync.WaitGroup
	)
	for _, c := range cs {
		wg.Go(func() {
			_ = c.SetReadDeadline(start.Add(deadline))
			s := "no answer"
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				s = strconv.Itoa(resp.StatusCode)
				_ = resp.Body.Close()
			} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				s = "closed"
			}
			mu.Lock()
			statuses[s]++
			last = max(last, time.Since(start))
			mu.Unlock()
		})
	}
	var held int64
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if v, err := status(pid, "VmRSS"); err == nil {
			held = max(held, v)
		}
	}
	wg.Wait()
	hwm, err := status(pid, "VmHWM")
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, statuses[k]))
	}
	fmt.Printf("conns      %d (announcing %d bytes each, opened in %s)\n", n, announce, opened.Round(time.Millisecond))
	fmt.Printf("rss_kib    before %d held %d peak %d\n", rss0, held, hwm)
	fmt.Printf("per_conn   held %.1f KiB peak %.1f KiB\n", float64(held-rss0)/float64(n), float64(hwm-rss0)/float64(n))
	fmt.Printf("answers    %s; last after %s\n", strings.Join(parts, ", "), last.Round(time.Millisecond))
	return nil
}

// status reads one "Name: <n> kB" line of /proc/<pid>/status, in KiB.
func status(pid int, name string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, name)
}
