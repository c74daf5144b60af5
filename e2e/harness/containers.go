package harness

import (
	"context"
	"fmt"
	"os"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/testcontainers/testcontainers-go"
)

// The tests that run containers do so with testcontainers-go. Its reaper,
// Ryuk, is itself a container of an image from Docker Hub
// (testcontainers/ryuk) that no registry here serves and `make images` does
// not build, so it is off, here and only here: the tests remove what they
// start themselves (RunContainer's cleanup, the compose test's Down). An
// environment that sets the variable keeps its own value.
func init() {
	if _, set := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !set {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

// RequireImage fails the test unless the image is present locally: the
// images are built here (`make images`), never pulled.
func RequireImage(t testing.TB, image string) {
	t.Helper()
	d, err := Docker()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ImageInspect(context.Background(), image); err != nil {
		if cerrdefs.IsNotFound(err) {
			t.Fatalf("image %s is not present locally (make images builds it; no registry is used)", image)
		}
		t.Fatalf("inspect image %s: %v", image, err)
	}
}

// RunContainer starts a container of a local image (never pulled) with
// testcontainers-go and removes it at the test's cleanup.
func RunContainer(t testing.TB, image string, opts ...testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	RequireImage(t, image)
	c, err := testcontainers.Run(context.Background(), image, opts...)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("run a container of %s: %v", image, err)
	}
	return c
}

// ExitCode waits until the container is no longer running and returns its
// exit status.
func ExitCode(ctx context.Context, id string) (int64, error) {
	d, err := Docker()
	if err != nil {
		return 0, err
	}
	// The engine's wait endpoint, as `docker wait` uses it.
	res, errs := d.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case r := <-res:
		if r.Error != nil {
			return 0, fmt.Errorf("wait for container %s: %s", id, r.Error.Message)
		}
		return r.StatusCode, nil
	case err := <-errs:
		return 0, fmt.Errorf("wait for container %s: %w", id, err)
	}
}
