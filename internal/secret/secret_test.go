package secret_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raas-dev/raas/internal/secret"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, value, file, want string
	}{
		{"prefers the value", "v", file, "v"},
		{"reads the file, trimmed", "", file, "s3cret"},
		{"treats a file that is not mounted as unset", "", filepath.Join(dir, "absent"), ""},
		{"is unset with neither", "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := secret.Read("token", c.value, c.file)
			if err != nil || got != c.want {
				t.Errorf("Read = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	t.Run("names the file but not the content when it cannot read it", func(t *testing.T) {
		_, err := secret.Read("token", "", dir) // a directory
		if err == nil || !strings.Contains(err.Error(), "token file") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("err = %v", err)
		}
	})
}
