module github.com/runner-manager/runner-manager/services/scheduler

go 1.26.8
