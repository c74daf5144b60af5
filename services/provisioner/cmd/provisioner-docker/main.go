// Command provisioner-docker runs the runners of the groups whose backend is
// docker, one container per runner, on a Docker Engine: it consumes
// {P}:provision:docker and publishes to {P}:results.
package main

import (
	"context"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/backend/docker"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
)

func main() {
	runtime.Main(config.BackendDocker, nil, func(_ context.Context, app *service.App) (runtime.BackendSetup, error) {
		f := docker.NewFactory(app.Config.Name, app.Log)
		return runtime.BackendSetup{Factory: f.Backend, Ping: f.Ping, Close: f.Close}, nil
	})
}
