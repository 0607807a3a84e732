package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The decoder below walks the YAML node tree beside the Go type, instead of handing the
// bytes to sigs.k8s.io/yaml or yaml.v3's KnownFields. Those report unknown fields and type
// errors with at best a line number and no field path; raas promises FILE:LINE:COL and the
// field on every error, and wants all of a file's errors at once, not the first.

// positions maps a field path, such as spec.quota.gpu or spec.owners[0], to the nodes that
// set it, so that validation errors found after decoding still point at a line.
type positions struct {
	values map[string]*yaml.Node // the value at the path
	keys   map[string]*yaml.Node // the mapping key that introduced it, if any
}

func newPositions() positions {
	return positions{values: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
}

// at returns the node for path. When the path is absent, as for a missing required field,
// it returns the key of its nearest present ancestor ("spec:" for spec.quota.cpu).
func (p positions) at(path string) *yaml.Node {
	if n, ok := p.values[path]; ok {
		return n
	}
	for {
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return p.values[""]
		}
		path = path[:i]
		if n, ok := p.keys[path]; ok {
			return n
		}
		if n, ok := p.values[path]; ok {
			return n
		}
	}
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

type decoder struct {
	file     string
	pos      positions
	problems Problems
}

// decodeDocument decodes the single YAML document in data into out, strictly: unknown
// fields, duplicate keys, wrong kinds of value and more than one document are problems.
func decodeDocument(file string, data []byte, out any) (positions, Problems) {
	d := &decoder{file: file, pos: newPositions()}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			d.fail(nil, "", "the file holds no document")
			return d.pos, d.problems
		}
		d.problems = append(d.problems, syntaxProblem(file, err))
		return d.pos, d.problems
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.fail(&extra, "", "the file holds more than one document; put one per file")
	} else if !errors.Is(err, io.EOF) {
		d.problems = append(d.problems, syntaxProblem(file, err))
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	d.value(doc, reflect.ValueOf(out).Elem(), "")
	return d.pos, d.problems
}

// parserProblems are yaml.v3's parser (not scanner) errors. yaml.v3 reports their line
// zero-based, one less than the line that holds the problem.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// syntaxProblem turns a yaml.v3 parse error ("yaml: line 3: ...") into a Problem.
func syntaxProblem(file string, err error) *Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
				if slices.Contains(parserProblems, msg) {
					line++
				}
			}
		}
	}
	p := &Problem{File: file, Line: line, Message: "invalid YAML: " + msg}
	if line > 0 {
		p.Col = 1
	}
	return p
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	p := &Problem{File: d.file, Field: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.pos.values[path] = n
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // a null leaves the zero value, as in JSON
	}
	if v.CanAddr() && v.Addr().Type().Implements(jsonUnmarshaler) {
		d.unmarshalJSON(n, v.Addr().Interface().(json.Unmarshaler), path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.value(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Struct:
		d.structValue(n, v, path)
	case reflect.Map:
		d.mapValue(n, v, path)
	case reflect.Slice:
		d.sliceValue(n, v, path)
	case reflect.String:
		if d.scalar(n, path, "a string") {
			if n.Tag == "!!bool" {
				d.fail(n, path, "expected a string, got the boolean %s; quote it", n.Value)
				return
			}
			v.SetString(n.Value)
		}
	case reflect.Bool:
		if d.scalar(n, path, "a boolean") {
			var b bool
			if n.Tag != "!!bool" || n.Decode(&b) != nil {
				d.fail(n, path, "expected true or false, got %q", n.Value)
				return
			}
			v.SetBool(b)
		}
	case reflect.Int, reflect.Int32, reflect.Int64:
		if d.scalar(n, path, "an integer") {
			i, err := strconv.ParseInt(n.Value, 10, 64)
			if n.Tag != "!!int" || err != nil || v.OverflowInt(i) {
				d.fail(n, path, "expected an integer, got %q", n.Value)
				return
			}
			v.SetInt(i)
		}
	default:
		panic(fmt.Sprintf("schema: no decoder for %s at %s", v.Type(), path))
	}
}

// scalar reports whether n is a scalar, and records a problem if it is not.
func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", want, kindName(n))
		return false
	}
	return true
}

func (d *decoder) unmarshalJSON(n *yaml.Node, u json.Unmarshaler, path string) {
	var plain any
	if err := n.Decode(&plain); err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	data, err := json.Marshal(plain)
	if err != nil {
		d.fail(n, path, "expected a scalar value, got %s", kindName(n))
		return
	}
	if err := u.UnmarshalJSON(data); err != nil {
		d.fail(n, path, "invalid value %s: %v", strings.TrimSpace(n.Value), err)
	}
}

func (d *decoder) structValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := jsonFields(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		child := joinField(path, key.Value)
		if first, dup := seen[key.Value]; dup {
			d.fail(key, child, "duplicate key; first set at line %d", first.Line)
			continue
		}
		seen[key.Value] = key
		idx, ok := fields[key.Value]
		if !ok {
			d.fail(key, child, "unknown field %q%s", key.Value, suggest(key.Value, fields))
			continue
		}
		d.pos.keys[child] = key
		d.value(val, v.Field(idx), child)
	}
}

func (d *decoder) mapValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		panic(fmt.Sprintf("schema: map key %s at %s", v.Type().Key(), path))
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		child := path + "[" + key.Value + "]"
		if first, dup := seen[key.Value]; dup {
			d.fail(key, child, "duplicate key; first set at line %d", first.Line)
			continue
		}
		seen[key.Value] = key
		d.pos.keys[child] = key
		elem := reflect.New(v.Type().Elem()).Elem()
		d.value(val, elem, child)
		m.SetMapIndex(reflect.ValueOf(key.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

func (d *decoder) sliceValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// jsonFields maps the JSON names of a struct's exported fields to their indexes.
func jsonFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = i
	}
	return fields
}

// suggest names the closest known field when a key looks like a typo of it.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for name := range fields {
		if dist := editDistance(strings.ToLower(key), strings.ToLower(name)); dist < bestDist ||
			(dist == bestDist && best != "" && name < best) {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	default:
		return "an empty document"
	}
}
