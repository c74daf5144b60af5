module github.com/runner-manager/runner-manager/services/scheduler

go 1.26.8

require (
	github.com/runner-manager/runner-manager/e2e v0.0.0
	github.com/runner-manager/runner-manager/libs v0.0.0
)

replace github.com/runner-manager/runner-manager/libs => ../../libs

replace github.com/runner-manager/runner-manager/e2e => ../../e2e
