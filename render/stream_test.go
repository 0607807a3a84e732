package render_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/raas-dev/raas/render"
)

func TestStream(t *testing.T) {
	for name, tenants := range map[string][]string{
		"writes what WriteStream writes of a whole render": nil,
		"writes no platform objects for a chosen tenant":   {"ml-team-alpha"},
	} {
		t.Run(name, func(t *testing.T) {
			opts := testOptions(t)
			opts.Tenants = tenants
			res, err := render.Repo(os.DirFS(examples), examples, opts)
			if err != nil || !res.OK() {
				t.Fatalf("render: %v %v", err, res.Failed)
			}
			platform := res.Platform
			if len(tenants) > 0 {
				platform = nil
			}
			var want, got bytes.Buffer
			if err := render.WriteStream(&want, platform, res.Tenants); err != nil {
				t.Fatal(err)
			}
			streamed, err := render.Stream(&got, os.DirFS(examples), examples, opts)
			if err != nil || !streamed.OK() {
				t.Fatalf("stream: %v %v", err, streamed.Failed)
			}
			if len(streamed.Tenants) != 0 {
				t.Errorf("Stream kept %d tenants", len(streamed.Tenants))
			}
			if diff := cmp.Diff(want.String(), got.String()); diff != "" {
				t.Errorf("stream (-want +got):\n%s", diff)
			}
		})
	}
}
