module github.com/runner-manager/runner-manager/services/ingress

go 1.26.8
