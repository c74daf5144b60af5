// The YAML tree walk of a validation: key paths, finding a key's node and
// line (through aliases and merge keys), reporting unknown keys, and
// rewriting the decoder's messages with the path of their line.

package config

import (
	"cmp"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// keyPath is a path in the YAML tree: string keys and int sequence indexes.
type keyPath []any

func (p keyPath) String() string {
	var b strings.Builder
	for _, e := range p {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	return b.String()
}

func (p keyPath) with(e ...any) keyPath {
	return append(append(keyPath(nil), p...), e...)
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapGet returns the key and value nodes of key in mapping n, following merge
// keys (<<) the way the decoder does: direct keys win.
func mapGet(n *yaml.Node, key string) (k, val *yaml.Node) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i].Tag != "!!merge" {
			return n.Content[i], n.Content[i+1]
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag != "!!merge" {
			continue
		}
		for _, m := range mergeSources(n.Content[i+1]) {
			if k, val := mapGet(m, key); k != nil {
				return k, val
			}
		}
	}
	return nil, nil
}

func mergeSources(n *yaml.Node) []*yaml.Node {
	n = resolve(n)
	if n != nil && n.Kind == yaml.SequenceNode {
		return n.Content
	}
	return []*yaml.Node{n}
}

// find returns the value node at path, the line of its key (or of the closest
// enclosing key present when it is absent) and whether it is present.
func (v *validator) find(path keyPath) (*yaml.Node, int, bool) {
	n, line := v.root, 0
	for _, e := range path {
		n = resolve(n)
		if n == nil {
			return nil, line, false
		}
		switch e := e.(type) {
		case string:
			k, val := mapGet(n, e)
			if k == nil {
				return nil, line, false
			}
			n, line = val, k.Line
		case int:
			if n.Kind != yaml.SequenceNode || e >= len(n.Content) {
				return nil, line, false
			}
			n = n.Content[e]
			line = n.Line
		}
	}
	return resolve(n), line, n != nil
}

// set tells whether the key at path is present with a non-null value.
func (v *validator) set(path keyPath) bool {
	n, _, ok := v.find(path)
	return ok && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	fieldsCache  sync.Map // reflect.Type -> map[string]reflect.Type
)

// yamlFields maps the YAML keys of struct type t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldsCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := make(map[string]reflect.Type)
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	fieldsCache.Store(t, m)
	return m
}

// walk checks the tree n against type t: unknown keys, and durations set to a
// non-positive value (absent ones get their default, an explicit "0s" does
// not). It also records the key path of each line.
func (v *validator) walk(n *yaml.Node, t reflect.Type, path keyPath) {
	n = resolve(n)
	if n == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			if d, err := time.ParseDuration(n.Value); err == nil && d <= 0 {
				v.add(n.Line, path.String(), "must be a positive duration, got %s", n.Value)
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				for _, m := range mergeSources(val) {
					v.walk(m, t, path)
				}
				continue
			}
			p := path.with(k.Value)
			if _, seen := v.linePath[k.Line]; !seen {
				v.linePath[k.Line] = p.String()
			}
			ft, ok := fields[k.Value]
			if !ok {
				v.add(k.Line, p.String(), "unknown key")
				continue
			}
			v.walk(val, ft, p)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			v.walk(item, t.Elem(), path.with(i))
		}
	}
}

var decodeError = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

// decoderProblem rewrites a problem reported by the YAML decoder (a value of
// the wrong type, a duplicate key) with the path of its line.
func (v *validator) decoderProblem(p Problem) Problem {
	if p.Path == "" {
		p.Path = v.linePath[p.Line]
	}
	if m := decodeError.FindStringSubmatch(p.Message); m != nil {
		want := m[3]
		switch want {
		case "time.Duration":
			want = "a duration with a unit (30s, 10m, 12h)"
		case "int", "int32", "int64":
			want = "an integer"
		case "float64":
			want = "a number"
		case "bool":
			want = "true or false"
		case "string":
			want = "a string"
		default:
			switch {
			case strings.HasPrefix(want, "[]"):
				want = "a list"
			default:
				want = "a mapping"
			}
		}
		if m[2] != "" {
			p.Message = fmt.Sprintf("%q is not %s", m[2], want)
		} else {
			got := map[string]string{"seq": "a list", "map": "a mapping"}[m[1]]
			p.Message = fmt.Sprintf("%s is not %s", cmp.Or(got, "a "+m[1]), want)
		}
	}
	return p
}
