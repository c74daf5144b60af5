package service

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"
)

// A route with path parameters added after the server answered its first
// requests (a service adds its routes after the health endpoints serve)
// works: the contexts pooled before have room for its parameters.
func TestRouteParamsAddedAfterServing(t *testing.T) {
	e := echo.New()
	presizeParams(e)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	for range 4 {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	e.POST("/api/v1/groups/:name/:action", func(c echo.Context) error {
		return c.String(http.StatusOK, c.Param("name")+" "+c.Param("action"))
	})
	for range 4 {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/groups/small/resume", nil))
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "small resume", rec.Body.String())
	}
}
