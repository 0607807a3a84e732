package schema_test

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/raas-dev/raas/schema"
)

var update = flag.Bool("update", false, "rewrite generated files and golden files")

// TestJSONSchemasAreCurrent fails when the committed JSON Schemas no longer match the Go
// types. Run `make generate` (go test ./schema -run JSONSchemas -update) to refresh them.
func TestJSONSchemasAreCurrent(t *testing.T) {
	schemas, err := schema.JSONSchemas(".")
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range schemas {
		if *update {
			if err := os.WriteFile(file, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v; run `make generate`", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale; run `make generate`", file)
		}
	}
}
