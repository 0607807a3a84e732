package schema_test

import (
	"testing"

	"github.com/raas-dev/raas/internal/golden"
	"github.com/raas-dev/raas/schema"
)

// TestGoldenJSONSchemas fails when the committed JSON Schemas no longer match the Go
// types. `make generate` (or `make golden`) refreshes them.
func TestGoldenJSONSchemas(t *testing.T) {
	schemas, err := schema.JSONSchemas(".")
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range schemas {
		golden.File(t, file, want)
	}
}
