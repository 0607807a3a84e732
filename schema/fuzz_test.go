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
		checkDecoded(t, "t.yaml", data, problems)
	})
}

// FuzzDecodePlatform decodes arbitrary raas.yaml files: decoding never panics, every
// problem names the file at a position inside it, and a platform that decodes without
// errors can be defaulted and validated.
func FuzzDecodePlatform(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/validate/platforms/*.yaml")
	for _, file := range append([]string{"../examples/raas.yaml"}, seeds...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("spec: {capacity: {gpu: 1e400}}\n"))
	f.Add([]byte("spec: {profiles: [{name: a, version: 1}, {name: a, version: 1}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, problems := schema.DecodePlatform("raas.yaml", data)
		if p == nil {
			t.Fatal("nil platform")
		}
		checkDecoded(t, "raas.yaml", data, problems)
		if len(problems.Errors()) > 0 {
			return
		}
		p.Default()
		checkDecoded(t, "raas.yaml", data, p.Validate())
	})
}

// checkDecoded fails when a problem does not name file, or points outside data.
func checkDecoded(t *testing.T, file string, data []byte, problems schema.Problems) {
	t.Helper()
	// YAML breaks lines at \n, \r\n and a lone \r.
	lines := 1
	for i, b := range data {
		if b == '\n' || (b == '\r' && (i+1 == len(data) || data[i+1] != '\n')) {
			lines++
		}
	}
	for _, p := range problems {
		if p.File != file {
			t.Errorf("problem without its file: %v", p)
		}
		if p.Line < 0 || p.Line > lines+1 || (p.Line > 0 && p.Col < 1) {
			t.Errorf("impossible position %d:%d in %d lines: %v", p.Line, p.Col, lines, p)
		}
	}
}
