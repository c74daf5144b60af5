module github.com/runner-manager/runner-manager/services/ingress

go 1.26.8

require github.com/runner-manager/runner-manager/libs v0.0.0

replace github.com/runner-manager/runner-manager/libs => ../../libs
