// Command provisioner-gcp runs the runners of the groups whose backend is
// gcp, one Compute Engine instance per runner: it consumes
// {P}:provision:gcp and publishes to {P}:results. Credentials are the
// application default credentials; RM_GCP_WITHOUT_AUTHENTICATION=true drops
// them (only for a fake endpoint). See docs/cloud-backends.md.
package main

import (
	"context"

	"google.golang.org/api/option"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/backend/gcp"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
)

// environment is what provisioner-gcp reads from the environment.
type environment struct {
	service.Env
	// WithoutAuthentication drops the credentials: only for a fake
	// Compute Engine endpoint.
	WithoutAuthentication bool `envconfig:"RM_GCP_WITHOUT_AUTHENTICATION"`
}

func main() {
	var env environment
	runtime.Main(config.BackendGCP, &env, func(_ context.Context, app *service.App) (runtime.BackendSetup, error) {
		opts := []gcp.Option{gcp.WithLogger(app.Log)}
		if env.WithoutAuthentication {
			opts = append(opts, gcp.WithClientOptions(option.WithoutAuthentication()))
		}
		f := gcp.NewFactory(app.Config.Name, opts...)
		if err := gcp.Preload(f, app.Config); err != nil {
			_ = f.Close()
			return runtime.BackendSetup{}, err
		}
		return runtime.BackendSetup{Factory: f.Backend, Close: f.Close}, nil
	})
}
