package schema_test

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/schema"
)

// expressible are the messages of raas's checks that a JSON Schema of one document can
// express: types, required and unknown fields, apiVersion and kind, fixed enums, name
// patterns and lengths, and ranges. Every other check depends on something a schema of
// one file cannot see (raas.yaml, other tenants, the file's name, YAML syntax, sums), and
// the agreement test leaves it to raas.
var expressible = []*regexp.Regexp{
	regexp.MustCompile(`^unknown field `),
	regexp.MustCompile(`^is required$`),
	regexp.MustCompile(`^expected an? `),
	regexp.MustCompile(`^must be (Tenant|Platform), got `),
	regexp.MustCompile(`^must be raas\.dev/v1alpha1`),
	regexp.MustCompile(`^invalid value `),
	regexp.MustCompile(`^".*" is not a valid name`),
	regexp.MustCompile(`^".*" is \d+ characters long; at most 52 are allowed$`),
	regexp.MustCompile(`^must not be negative`),
	regexp.MustCompile(`^must be a whole number of GPUs`),
	regexp.MustCompile(`^must be at least 1, got`),
	regexp.MustCompile(`^must be between 1 and 65535`),
	regexp.MustCompile(`^name at least one owner$`),
}

// enumFields are fields whose "is not allowed" message names a fixed list, which the
// schema can express as an enum; elsewhere the list comes from raas.yaml.
var enumFields = regexp.MustCompile(`^(spec\.podSecurity|spec\.defaults\.podSecurity|spec\.scheduler\.plugin|spec\.gpu\.pools\[\d+\]\.taint\.effect)$`)

func isExpressible(p *schema.Problem) bool {
	if strings.Contains(p.Message, "is not allowed; allowed:") {
		return enumFields.MatchString(p.Field)
	}
	for _, re := range expressible {
		if re.MatchString(p.Message) {
			return true
		}
	}
	return false
}

// TestSchemaAgreesWithValidate runs every case under testdata/validate and every example
// through both raas's validation and the generated JSON Schemas. Where raas accepts a
// document, the schema must too; where raas refuses a field for a reason the schema can
// express, the schema must refuse that field; and every field the schema refuses, raas
// must refuse.
func TestSchemaAgreesWithValidate(t *testing.T) {
	tenantSchema := compileSchema(t, schema.TenantSchemaFile)
	platformSchema := compileSchema(t, schema.PlatformSchemaFile)

	var cases []agreementCase
	add := func(glob, kind string) {
		files, err := filepath.Glob(glob)
		if err != nil || len(files) == 0 {
			t.Fatalf("no files match %s: %v", glob, err)
		}
		for _, f := range files {
			cases = append(cases, agreementCase{file: f, kind: kind})
		}
	}
	add("../examples/tenants/*.yaml", schema.KindTenant)
	add("../testdata/validate/tenants/*.yaml", schema.KindTenant)
	add("../examples/"+schema.PlatformFile, schema.KindPlatform)
	add("../testdata/validate/platforms/*.yaml", schema.KindPlatform)

	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.file, "../"), func(t *testing.T) {
			data, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			fsys := readRepo(t)
			var file string
			sch := tenantSchema
			if c.kind == schema.KindTenant {
				file = path.Join(schema.TenantsDir, filepath.Base(c.file))
			} else {
				file = schema.PlatformFile
				sch = platformSchema
			}
			fsys[file] = &fstest.MapFile{Data: data}
			repo, err := schema.Load(fsys)
			if err != nil {
				t.Fatal(err)
			}
			var raas []*schema.Problem
			for _, p := range repo.Problems {
				if p.File == file && p.Severity == schema.SeverityError {
					raas = append(raas, p)
				}
			}

			js, err := yaml.YAMLToJSON(data)
			if err != nil {
				// Not YAML the schema could read: raas must say so, and nothing else is
				// to compare.
				if len(raas) == 0 {
					t.Errorf("raas accepts a file that is not valid YAML: %v", err)
				}
				return
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
			if err != nil {
				t.Fatal(err)
			}
			refused := schemaErrors(sch.Validate(inst))

			for _, p := range raas {
				if !isExpressible(p) {
					continue
				}
				if !slices.ContainsFunc(refused, func(f string) bool { return related(f, p.Field) }) {
					t.Errorf("raas refuses %s (%s), the schema accepts it", p.Field, p.Message)
				}
			}
			for _, f := range refused {
				if !slices.ContainsFunc(raas, func(p *schema.Problem) bool { return related(f, p.Field) }) {
					t.Errorf("the schema refuses %s, raas accepts it", f)
				}
			}
		})
	}
}

type agreementCase struct{ file, kind string }

func compileSchema(t *testing.T, file string) *jsonschema.Schema {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(file, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return s
}

// schemaErrors lists the fields a validation error refuses, in raas's notation
// (spec.owners[0]): the location of each leaf error, with the property a required or
// additionalProperties error names.
func schemaErrors(err error) []string {
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return []string{fmt.Sprintf("(%v)", err)}
	}
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				out = append(out, field(append(slices.Clone(e.InstanceLocation), m)))
			}
		case *kind.AdditionalProperties:
			for _, m := range k.Properties {
				out = append(out, field(append(slices.Clone(e.InstanceLocation), m)))
			}
		default:
			out = append(out, field(e.InstanceLocation))
		}
	}
	walk(ve)
	slices.Sort(out)
	return slices.Compact(out)
}

var index = regexp.MustCompile(`^[0-9]+$`)

func field(loc []string) string {
	var b strings.Builder
	for _, s := range loc {
		switch {
		case index.MatchString(s):
			fmt.Fprintf(&b, "[%s]", s)
		case b.Len() > 0:
			b.WriteString("." + s)
		default:
			b.WriteString(s)
		}
	}
	return b.String()
}

// related reports whether two fields are the same or one holds the other: a schema says
// "expected a list" at spec.owners where raas may name spec.owners[0].
func related(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	return a == b || strings.HasPrefix(b, a+".") || strings.HasPrefix(b, a+"[") ||
		strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
}
