# The fake GitHub Actions runner of the end-to-end tests (e2e/cmd/fake-runner),
# FROM scratch with its static binary only. Built by
# scripts/build-fake-runner-image.sh as runner-manager/fake-runner:dev.
FROM scratch
COPY fake-runner /fake-runner
USER 65532:65532
ENTRYPOINT ["/fake-runner"]
