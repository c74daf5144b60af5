// Command provisioner-aws runs the runners of the groups whose backend is
// aws, one EC2 instance per runner: it consumes {P}:provision:aws and
// publishes to {P}:results. Credentials come from the AWS default chain
// (environment, shared files, IAM role). See docs/cloud-backends.md.
package main

import (
	"context"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/backend/aws"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
)

func main() {
	runtime.Main(config.BackendAWS, nil, func(_ context.Context, app *service.App) (runtime.BackendSetup, error) {
		f := aws.NewFactory(app.Config.Name, aws.WithLogger(app.Log))
		if err := aws.Preload(f, app.Config); err != nil {
			return runtime.BackendSetup{}, err
		}
		return runtime.BackendSetup{Factory: f.Backend}, nil
	})
}
