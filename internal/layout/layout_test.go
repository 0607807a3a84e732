package layout

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/raas-dev/raas"

// stages ranks every package of the module along the flow. A package may import only
// packages of a lower rank; a package not listed here fails the test until it is given
// its place.
var stages = map[string]int{
	"api/v1alpha1":     0,
	"internal/memo":    0,
	"internal/secret":  0,
	"internal/volcano": 0,
	"internal/trigger": 1,

	"source":                  1,
	"schema":                  2,
	"render/catalog":          3,
	"internal/vclusterconfig": 3, // the kubeconfig Secret a vcluster exports, by tenant
	"scheduler":               4,
	"render":                  5,
	"reconcile":               6,
	"bridge":                  7,
	"report":                  7, // a Result as text, Markdown and JSON
	"fleet":                   7, // one repository on several host clusters: placement, moves
	"daemon/statuspage":       8,
	"daemon/shard":            8, // the ring of replicas: who owns which tenant
	"daemon":                  9,

	"internal/testenv":     10,
	"internal/exampletest": 10,
	"internal/golden":      10,
	"internal/layout":      10,
	"internal/benchrepo":   10, // the repositories the benchmarks measure
	"deploy":               10, // manifests and their tests only

	"cmd/raas":   11,
	"hack/local": 11,
}

// TestImportsFollowTheFlow lists the module's packages with go list and fails on every
// import that points back up the flow, or sideways within a stage.
func TestImportsFollowTheFlow(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) > 0 {
			graph[fields[0]] = fields[1:]
		}
	}
	if len(graph) < len(stages) {
		t.Fatalf("go list found %d packages, fewer than the %d ranked here:\n%s", len(graph), len(stages), out)
	}
	for _, problem := range backImports(graph) {
		t.Error(problem)
	}
}

// TestBackImportFails shows that the check sees a back-import and an unranked package.
func TestBackImportFails(t *testing.T) {
	graph := map[string][]string{
		module + "/render":    {"fmt", module + "/schema", module + "/reconcile"},
		module + "/reconcile": {module + "/render"},
		module + "/schema":    nil,
		module + "/newthing":  nil,
		module + "/daemon":    {module + "/cmd/raas"},
	}
	got := backImports(graph)
	for _, want := range []string{
		"render (stage 5) imports reconcile (stage 6)",
		"daemon (stage 9) imports cmd/raas (stage 11)",
		"newthing has no stage",
	} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("no problem %q in %q", want, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("problems = %q, want 3", got)
	}
}

// backImports returns a line for every import of a module package that does not point
// to a lower stage, and for every module package without a stage.
func backImports(graph map[string][]string) []string {
	var problems []string
	pkgs := make([]string, 0, len(graph))
	for p := range graph {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, p := range pkgs {
		name, ok := strings.CutPrefix(p, module+"/")
		if !ok {
			continue
		}
		from, ranked := stages[name]
		if !ranked {
			problems = append(problems, fmt.Sprintf("%s has no stage: add it to stages in internal/layout", name))
			continue
		}
		for _, imp := range graph[p] {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if to, ranked := stages[dep]; ranked && to >= from {
				problems = append(problems, fmt.Sprintf("%s (stage %d) imports %s (stage %d): imports point down the flow only", name, from, dep, to))
			}
		}
	}
	return problems
}
