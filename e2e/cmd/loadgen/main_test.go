package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// server is a stand-in for the ingress: it checks each request the way the
// ingress does and answers 202, or 200 for a delivery it saw before.
func server(t *testing.T, secret string) (*httptest.Server, *sync.Map) {
	seen := &sync.Map{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.URL.Path != "/webhook" ||
			!hmac.Equal([]byte(r.Header.Get(webhooktest.HeaderSignature256)), []byte(webhooktest.Sign(secret, body))) ||
			len(body) < 7<<10 || len(body) > 12<<10 || r.Header.Get(webhooktest.HeaderEvent) != "workflow_job" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		// Like the ingress: a repeated delivery id or a repeated body is a duplicate.
		if _, dup := seen.LoadOrStore("body:"+string(body), true); dup {
			w.WriteHeader(http.StatusOK)
			return
		}
		if _, dup := seen.LoadOrStore(r.Header.Get(webhooktest.HeaderDelivery), true); dup {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "published\n")
	}))
	t.Cleanup(s.Close)
	return s, seen
}

func TestLoadSendsSignedDistinctDeliveries(t *testing.T) {
	for _, std := range []bool{false, true} {
		s, seen := server(t, "k")
		o := options{url: s.URL + "/webhook", secret: "k", concurrency: 4, count: 300, duration: time.Minute, bodies: 16, timeout: 5 * time.Second, stdClient: std}
		require.NoError(t, check(o))
		r, err := load(context.Background(), o)
		require.NoError(t, err)
		require.Equal(t, int64(300), r.sent, "net/http client: %v", std)
		require.Equal(t, int64(300), r.accepted)
		require.Equal(t, map[string]int64{"202": 300}, r.statuses)
		n := 0
		seen.Range(func(any, any) bool { n++; return true })
		require.Equal(t, 600, n, "every request has its own delivery id and its own body")
		var out bytes.Buffer
		r.print(&out, o)
		require.Contains(t, out.String(), "accepted   300")
	}
}

func TestFixedRate(t *testing.T) {
	s, _ := server(t, "k")
	o := options{url: s.URL + "/webhook", secret: "k", concurrency: 2, rate: 2000, count: 200, duration: time.Minute, bodies: 4, timeout: 5 * time.Second}
	r, err := load(context.Background(), o)
	require.NoError(t, err)
	require.Equal(t, int64(200), r.accepted)
}

func TestReadResponse(t *testing.T) {
	cases := []struct {
		in     string
		status int
		keep   bool
	}{
		{"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n\r\npublished\nHTTP/1.1", 202, true},
		{"HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 413, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, true},
		{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false},
	}
	for _, tc := range cases {
		br := bufioReader(tc.in)
		status, keep, err := readResponse(br)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.status, status)
		require.Equal(t, tc.keep, keep)
	}
	_, _, err := readResponse(bufioReader("garbage\r\n\r\n"))
	require.Error(t, err)
}

func TestOnlyLoopbackTargets(t *testing.T) {
	base := options{secret: "k", concurrency: 1, count: 1, duration: time.Second, bodies: 1}
	for _, u := range []string{"http://127.0.0.1:8080/webhook", "http://localhost/webhook", "http://[::1]:9/webhook", "http://127.1.2.3/x"} {
		o := base
		o.url = u
		require.NoError(t, check(o), u)
	}
	for _, u := range []string{"http://10.0.0.1/webhook", "http://192.168.1.2/", "http://example.com/webhook", "ftp://127.0.0.1/", "http://0.0.0.0/"} {
		o := base
		o.url = u
		err := check(o)
		require.Error(t, err, u)
		require.True(t, strings.Contains(err.Error(), "loopback") || strings.Contains(err.Error(), "not an http"), err.Error())
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
