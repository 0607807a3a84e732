package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/memo"
)

// chartShapes shares vcluster chart renders between tenants. The Helm engine is the
// largest per-tenant cost of a render (issue 15: about half of it, a third of that in
// compiling and checking the values schema), yet most tenants of a repository differ only
// in their name. Tenants whose chart inputs are equal once the name is reduced to its
// pattern (letters, digits and dashes in place) are one shape. The first tenant of a
// shape renders in full and its text becomes the shape's template: the name, wherever it
// appears literally, and the values the chart embeds as base64 (the config Secret) and
// as the SHA-256 of that base64 (the StatefulSet's vClusterConfigHash), which are redone
// from the decoded values with the name replaced. The second tenant renders in full too,
// and so does a probe name that differs from the first in every letter and digit; the
// shape is shared only if the template filled with either name is byte for byte its
// render. That shows that the chart uses the name in no other way (no truncation, case
// change or hash of it, no test of its characters), so every later tenant of the shape is
// filled from the template without a render. (A chart that tested for one particular
// name would escape the proof; the vcluster chart does not, and the golden files and the
// determinism test render the examples both ways.) A shape that fails the proof renders in
// full for every tenant. Names whose YAML reading is not the string itself (no, true, 1e3) render
// in full, since a template may quote them differently.
type chartShapes struct {
	mu     sync.Mutex
	shapes map[chartInputs]*chartShape
}

// chartShape is what is known of one shape: its template, and, once a second tenant has
// rendered, whether the shape is shared.
type chartShape struct {
	mu       sync.Mutex
	template *chartTemplate
	proving  bool // a second tenant is proving the template
	decided  bool
	shared   bool
}

// render returns the chart text of the tenant with inputs in, rendering it with full
// when the shape cannot serve it.
func (c *chartShapes) render(in chartInputs, full func(chartInputs) ([]byte, error)) ([]byte, error) {
	if !plainName(in.Name) {
		return full(in)
	}
	key := in
	key.Name = namePattern(in.Name)
	c.mu.Lock()
	if c.shapes == nil {
		c.shapes = map[chartInputs]*chartShape{}
	}
	sh := c.shapes[key]
	if sh == nil {
		sh = &chartShape{}
		c.shapes[key] = sh
	}
	c.mu.Unlock()

	sh.mu.Lock()
	tmpl, decided, shared := sh.template, sh.decided, sh.shared
	sh.mu.Unlock()
	switch {
	case decided && shared:
		return tmpl.fill(in.Name), nil
	case decided:
		return full(in)
	}
	out, err := full(in)
	if err != nil {
		return nil, err
	}
	sh.mu.Lock()
	first := sh.template == nil
	if first {
		sh.template = newChartTemplate(out, in.Name)
	}
	tmpl = sh.template
	prove := !first && !sh.proving && tmpl.name != in.Name
	sh.proving = sh.proving || prove
	sh.mu.Unlock()
	if !prove {
		return out, nil
	}
	// A second tenant of the shape: prove the template on it and on a probe name that
	// differs from the first tenant's in every letter and digit.
	probe := probeName(tmpl.name)
	shared = bytes.Equal(tmpl.fill(in.Name), out)
	if shared && plainName(probe) {
		pin := in
		pin.Name = probe
		probeOut, err := full(pin)
		shared = err == nil && bytes.Equal(tmpl.fill(probe), probeOut)
	} else {
		shared = false
	}
	sh.mu.Lock()
	sh.decided, sh.shared = true, shared
	sh.mu.Unlock()
	return out, nil
}

// probeName shifts every letter and digit of name by one (z to a, 9 to 0): a name of the
// same pattern that shares no letter or digit with it in place.
func probeName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return 'a' + (r-'a'+1)%26
		case r >= '0' && r <= '9':
			return '0' + (r-'0'+1)%10
		}
		return r
	}, name)
}

// chartTemplate is one tenant's chart text cut where its name, or something derived from
// it, appears.
type chartTemplate struct {
	name  string
	parts []templatePart
}

// templatePart is literal text (in which the name is replaced), an embedded base64 blob
// (decoded, so that the name can be replaced inside it), or the hex SHA-256 of blob i.
type templatePart struct {
	text    []byte
	decoded []byte // set for a blob
	hashOf  int    // 1 + the index of the part whose blob this hashes, or 0
}

func newChartTemplate(text []byte, name string) *chartTemplate {
	type cut struct {
		at, end int
		part    templatePart
	}
	var cuts []cut
	for _, blob := range quotedBase64(text) {
		decoded, err := base64.StdEncoding.DecodeString(string(blob))
		if err != nil || !bytes.Contains(decoded, []byte(name)) {
			continue
		}
		for at := 0; ; {
			i := bytes.Index(text[at:], blob)
			if i < 0 {
				break
			}
			cuts = append(cuts, cut{at + i, at + i + len(blob), templatePart{decoded: decoded}})
			at += i + len(blob)
		}
		sum := sha256.Sum256(blob)
		hash := []byte(hex.EncodeToString(sum[:]))
		for at := 0; ; {
			i := bytes.Index(text[at:], hash)
			if i < 0 {
				break
			}
			cuts = append(cuts, cut{at + i, at + i + len(hash), templatePart{decoded: decoded, hashOf: 1}})
			at += i + len(hash)
		}
	}
	slices.SortFunc(cuts, func(a, b cut) int { return a.at - b.at })
	t := &chartTemplate{name: name}
	at := 0
	for _, c := range cuts {
		if c.at < at {
			continue // overlapping matches: the proof will fail if this matters
		}
		t.parts = append(t.parts, templatePart{text: text[at:c.at]}, c.part)
		at = c.end
	}
	t.parts = append(t.parts, templatePart{text: text[at:]})
	return t
}

// fill returns the template's text for a tenant named name.
func (t *chartTemplate) fill(name string) []byte {
	var out bytes.Buffer
	from, to := []byte(t.name), []byte(name)
	for _, p := range t.parts {
		switch {
		case p.decoded == nil:
			out.Write(bytes.ReplaceAll(p.text, from, to))
		case p.hashOf == 0:
			out.WriteString(base64.StdEncoding.EncodeToString(bytes.ReplaceAll(p.decoded, from, to)))
		default:
			sum := sha256.Sum256([]byte(base64.StdEncoding.EncodeToString(bytes.ReplaceAll(p.decoded, from, to))))
			out.WriteString(hex.EncodeToString(sum[:]))
		}
	}
	return out.Bytes()
}

// quotedBase64 returns the double-quoted strings of text that look like base64 of some
// length.
func quotedBase64(text []byte) [][]byte {
	var blobs [][]byte
	for rest := text; ; {
		i := bytes.IndexByte(rest, '"')
		if i < 0 {
			return blobs
		}
		rest = rest[i+1:]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return blobs
		}
		s := rest[:j]
		rest = rest[j+1:]
		if len(s) >= 16 && len(s)%4 == 0 && isBase64(s) {
			blobs = append(blobs, s)
		}
	}
}

func isBase64(s []byte) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// namePattern keeps a name's dashes and the places of its letters and digits: names of
// one pattern have the same length and the same structure.
func namePattern(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return 'a'
		case r >= '0' && r <= '9':
			return '0'
		}
		return r
	}, name)
}

// plainName reports whether name reads as itself in YAML, so that no template quotes it
// differently from another name.
func plainName(name string) bool {
	var v any
	if err := yaml.Unmarshal([]byte(name), &v); err != nil {
		return false
	}
	s, ok := v.(string)
	return ok && s == name
}

// chartSchemas compiles each chart's values.schema.json once. Helm compiles it on every
// render (chartutil.ValidateAgainstSingleSchema, helm v3.22.0 pkg/chartutil/jsonschema.go:114),
// which cost more than rendering the templates. Charts with subcharts are left to Helm.
type chartSchemas struct {
	compiled memo.Map[*chart.Chart, *jsonschema.Schema]
}

// validates reports whether chartSchemas validates the values of ch itself, so that Helm
// must not.
func (c *chartSchemas) validates(ch *chart.Chart) bool {
	return ch.Schema != nil && len(ch.Dependencies()) == 0
}

// validate checks the coalesced values of ch, as Helm's ToRenderValues would, when
// validates(ch).
func (c *chartSchemas) validate(ch *chart.Chart, top chartutil.Values) error {
	if !c.validates(ch) {
		return nil
	}
	sch, err := c.compiled.Get(ch, func() (*jsonschema.Schema, error) {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(ch.Schema))
		if err != nil {
			return nil, err
		}
		compiler := jsonschema.NewCompiler()
		if err := compiler.AddResource("file:///values.schema.json", doc); err != nil {
			return nil, err
		}
		return compiler.Compile("file:///values.schema.json")
	})
	if err != nil {
		return fmt.Errorf("values.schema.json: %w", err)
	}
	values, ok := top["Values"].(chartutil.Values)
	if !ok {
		return errors.New("no values to validate")
	}
	if err := sch.Validate(values.AsMap()); err != nil {
		msg := strings.TrimPrefix(err.Error(), "jsonschema validation failed with 'file:///values.schema.json#'\n")
		return fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s",
			ch.Name(), msg)
	}
	return nil
}
