package schema_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/raas-dev/raas/schema"
)

// FuzzDecodeTenant feeds arbitrary bytes to the tenant decoder. It must never panic, every
// problem must name the file, and a position, when given, must be a real one.
func FuzzDecodeTenant(f *testing.F) {
	seeds, _ := filepath.Glob("../examples/tenants/*.yaml")
	bad, _ := filepath.Glob("../testdata/validate/tenants/*.yaml")
	for _, file := range append(seeds, bad...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("spec: {quota: {cpu: 1e400}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tenant, problems := schema.DecodeTenant("t.yaml", data)
		if tenant == nil {
			t.Fatal("nil tenant")
		}
		// YAML breaks lines at \n, \r\n and a lone \r.
		lines := 1
		for i, b := range data {
			if b == '\n' || (b == '\r' && (i+1 == len(data) || data[i+1] != '\n')) {
				lines++
			}
		}
		for _, p := range problems {
			if p.File != "t.yaml" {
				t.Errorf("problem without its file: %v", p)
			}
			if p.Line < 0 || p.Line > lines+1 || (p.Line > 0 && p.Col < 1) {
				t.Errorf("impossible position %d:%d in %d lines: %v", p.Line, p.Col, lines, p)
			}
		}
	})
}
