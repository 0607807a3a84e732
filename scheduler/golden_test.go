package scheduler_test

import (
	"bytes"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	runtimeschema "k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/golden"
	"github.com/raas-dev/raas/scheduler"
	"github.com/raas-dev/raas/schema"
)

// goldenCases are tenants repositories and the directory of their expected output.
var goldenCases = []struct {
	name, repo, want string
}{
	{"examples", "../examples", "../testdata/scheduler/examples"},
	{"hierarchy", "../testdata/scheduler/hierarchy/input", "../testdata/scheduler/hierarchy/want"},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			repo := load(t, tc.repo)
			got := map[string][]byte{}
			conf, err := scheduler.Config(repo.Platform)
			if err != nil {
				t.Fatal(err)
			}
			got["volcano-scheduler.conf"] = []byte(conf)
			objs, err := scheduler.Platform(repo.Platform)
			if err != nil {
				t.Fatal(err)
			}
			got["platform.yaml"] = marshal(t, objs)
			for _, tenant := range repo.Tenants {
				s := scheduler.ForTenant(repo.Platform, tenant)
				got[tenant.Metadata.Name+".yaml"] = marshal(t, append([]client.Object{s.Queue()}, s.Objects()...))
			}
			golden.Dir(t, tc.want, got)
		})
	}
}

// load reads a tenants repository and fails on any error in it; warnings are allowed.
func load(t *testing.T, dir string) *schema.Repo {
	t.Helper()
	repo, err := schema.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.Problems.Errors(); len(errs) > 0 || !repo.Usable() {
		t.Fatalf("%s does not validate:\n%v", dir, errs)
	}
	return repo
}

// marshal writes objects as a YAML stream, without the status and creation timestamp
// that a rendered object never sets.
func marshal(t *testing.T, objs []client.Object) []byte {
	t.Helper()
	var b bytes.Buffer
	for i, obj := range objs {
		if obj.GetObjectKind().GroupVersionKind() == (runtimeschema.GroupVersionKind{}) {
			t.Errorf("object %d (%T %s) has no TypeMeta", i, obj, obj.GetName())
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		delete(u, "status")
		if meta, ok := u["metadata"].(map[string]any); ok {
			delete(meta, "creationTimestamp")
		}
		data, err := yaml.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	return b.Bytes()
}
