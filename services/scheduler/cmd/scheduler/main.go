// Command scheduler consumes workflow_job events and provision results,
// enforces every group's limits atomically in Redis, emits create and delete
// commands, runs the reconcile loop under a lease and serves the admin API.
package main

import (
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/scheduler"
)

func main() {
	service.Main(service.Options{
		Binary: "scheduler",
		Listen: func(c *config.Config) string { return c.Scheduler.Listen },
	}, scheduler.Run)
}
