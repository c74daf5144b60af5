package service_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
)

// The main listener serves (health probes) before the run function adds its
// routes: routes added through Routes while requests go through Handler are
// no data race (run with -race: adding with app.HTTP.GET here is one, as
// the scheduler's TestRunWiresEverything showed under -count=10), and every
// route works once added.
func TestRoutesAddedWhileServing(t *testing.T) {
	setSecrets(t)
	cfg, err := config.Parse([]byte(validConfig), mustSecrets(t))
	require.NoError(t, err)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}) // never dialled: /healthz only
	t.Cleanup(func() { _ = rdb.Close() })
	app := service.NewApp("scheduler", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), rdb)
	h := app.Handler()

	const routes = 50
	stop := make(chan struct{})
	var served atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/r"+strconv.Itoa(i%routes)+"/x", nil))
				rec = httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
				if rec.Code != http.StatusOK {
					panic("healthz: " + strconv.Itoa(rec.Code))
				}
				served.Add(1)
			}
		})
	}
	for i := range routes {
		// Requests are routed between any two additions.
		for n := served.Load(); served.Load() < n+2; {
			runtime.Gosched()
		}
		app.Routes(func(e *echo.Echo) {
			e.GET("/api/r"+strconv.Itoa(i)+"/:name", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("name")) })
		})
	}
	close(stop)
	wg.Wait()
	for i := range routes {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/r"+strconv.Itoa(i)+"/x", nil))
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "x", rec.Body.String())
	}
}
