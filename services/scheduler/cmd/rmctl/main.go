// Command rmctl operates a runner-manager through the scheduler's admin API:
// runner groups, runners, the dead-letter queue, and configuration checks.
// Run `rmctl help` for usage.
package main

import (
	"os"

	"github.com/runner-manager/runner-manager/services/scheduler/internal/rmctl"
)

func main() { os.Exit(rmctl.Main(os.Args[1:])) }
