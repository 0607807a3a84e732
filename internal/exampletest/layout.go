package exampletest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/raas-dev/raas/schema"
)

// A LayoutCase is one file under testdata/validate/layouts: a way a person may arrange
// the files under tenants/ of the examples, and what raas must make of it. Its lines are
// operations on a copy of examples/, and comments that say what Load must report:
//
//	move tenants/ml-team-alpha.yaml shared/ml-team-alpha.yaml
//	link tenants/ml-team-alpha.yaml ../shared/ml-team-alpha.yaml
//	write tenants/README.md some text
//	mkdir tenants/empty
//	# tenants: data-sandbox ml-team-alpha vision-team vision-team-next
//	# rejected: ml-team-alpha
//	# want: tenants/ml-team-alpha.yaml: a symbolic link
//
// "tenants" lists the valid tenants, "rejected" the names in Repo.Rejected, and each
// "want" is the start of an error that must be reported; no other error may be.
type LayoutCase struct {
	Name     string
	ops      [][]string
	Tenants  []string
	Rejected []string
	Want     []string
}

// LayoutCases reads every case under testdata/validate/layouts.
func LayoutCases(t testing.TB) []LayoutCase {
	t.Helper()
	files, err := filepath.Glob(Path(t, "testdata", "validate", "layouts", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no layout cases: %v", err)
	}
	var cases []LayoutCase
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		c := LayoutCase{Name: strings.TrimSuffix(filepath.Base(file), ".txt")}
		for _, line := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(line, "# tenants:"):
				c.Tenants = strings.Fields(strings.TrimPrefix(line, "# tenants:"))
			case strings.HasPrefix(line, "# rejected:"):
				c.Rejected = strings.Fields(strings.TrimPrefix(line, "# rejected:"))
			case strings.HasPrefix(line, "# want: "):
				c.Want = append(c.Want, strings.TrimPrefix(line, "# want: "))
			case strings.HasPrefix(line, "#"), strings.TrimSpace(line) == "":
			default:
				c.ops = append(c.ops, strings.Fields(line))
			}
		}
		if c.Tenants == nil {
			t.Fatalf("%s: no '# tenants:' line", file)
		}
		cases = append(cases, c)
	}
	return cases
}

// Apply arranges the copy of examples/ in dir as the case says.
func (c LayoutCase) Apply(t testing.TB, dir string) {
	t.Helper()
	at := func(name string) string {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, op := range c.ops {
		var err error
		switch {
		case op[0] == "move" && len(op) == 3:
			err = os.Rename(at(op[1]), at(op[2]))
		case op[0] == "link" && len(op) == 3:
			err = os.Symlink(op[2], at(op[1]))
		case op[0] == "write" && len(op) >= 2:
			err = os.WriteFile(at(op[1]), []byte(strings.Join(op[2:], " ")+"\n"), 0o644)
		case op[0] == "mkdir" && len(op) == 2:
			err = os.MkdirAll(at(op[1]), 0o755)
		default:
			t.Fatalf("layout %s: cannot read the operation %q", c.Name, strings.Join(op, " "))
		}
		if err != nil {
			t.Fatalf("layout %s: %v", c.Name, err)
		}
	}
}

// Check fails the test unless repo is what the case says Load must make of it.
func (c LayoutCase) Check(t testing.TB, repo *schema.Repo) {
	t.Helper()
	var names, rejected []string
	for _, tn := range repo.Tenants {
		names = append(names, tn.Metadata.Name)
	}
	for _, r := range repo.Rejected {
		rejected = append(rejected, r.Name)
	}
	slices.Sort(rejected)
	want := slices.Sorted(slices.Values(c.Rejected))
	if !slices.Equal(names, c.Tenants) {
		t.Errorf("tenants = %v, want %v", names, c.Tenants)
	}
	if !slices.Equal(rejected, want) {
		t.Errorf("rejected = %v, want %v", rejected, want)
	}
	errs := repo.Problems.Errors()
	matched := make([]bool, len(errs))
	for _, w := range c.Want {
		found := false
		for i, e := range errs {
			if strings.HasPrefix(e.Error(), w) {
				matched[i], found = true, true
			}
		}
		if !found {
			t.Errorf("missing error %s", w)
		}
	}
	for i, e := range errs {
		if !matched[i] {
			t.Errorf("unexpected error %s", e)
		}
	}
}
