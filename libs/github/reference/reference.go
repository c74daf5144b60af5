// Package reference holds the runner-related part of GitHub's official
// OpenAPI description, with the workflow_job webhook schemas (README.md says
// where it comes from), kept in the repository so that the conformance tests
// run from any checkout; reference_test.go checks it against the project's
// reference copy wherever one is found above the work tree.
package reference

import (
	_ "embed"
	"os"
	"path/filepath"
)

// File is the description's file name.
const File = "github-actions-runners.openapi.json"

//go:embed github-actions-runners.openapi.json
var openAPI []byte

// OpenAPI returns the description: $RM_REFERENCE_DIR/File when that variable
// is set (to try another version), else the copy in this package.
func OpenAPI() ([]byte, error) {
	if d := os.Getenv("RM_REFERENCE_DIR"); d != "" {
		return os.ReadFile(filepath.Join(d, File))
	}
	return openAPI, nil
}
