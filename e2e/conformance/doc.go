// Package conformance holds the test that keeps the fake GitHub honest: every
// response of the fake, on every route a runner manager uses, and every webhook
// it sends, is validated against GitHub's official OpenAPI description
// (libs/github/reference, or $RM_REFERENCE_DIR).
package conformance
