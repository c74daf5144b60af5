package webhook

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
)

// This file decodes a workflow_job body in one pass. encoding/json reads a
// body twice (a validity scan, then the decoding, which scans again every
// value it skips) and was half of the ingress's CPU; this parser validates
// the whole document as strictly as encoding/json and extracts the fields of
// payload on the way. FuzzDecode checks that it accepts exactly what
// json.Unmarshal into payload accepts, with the same result.

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

var (
	errSyntax = errors.New("invalid JSON")
	errType   = errors.New("unexpected JSON type")
	errDepth  = errors.New("JSON nested too deeply")
)

// plain marks the bytes that may appear in a string and be copied as they
// are: printable ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// special tells whether any of the 8 bytes of w is not plain: below 0x20,
// '"', '\\', 0x7f or non-ASCII (exact bit tricks for "has a byte less than
// n" and "has a zero byte", from Bit Twiddling Hacks).
func special(w uint64) bool {
	const (
		ones   = 0x0101010101010101
		highs  = 0x8080808080808080
		quote  = ones * '"'
		bslash = ones * '\\'
		del    = ones * 0x7f
	)
	q, b, d := w^quote, w^bslash, w^del
	return ((w-ones*0x20)&^w|(q-ones)&^q|(b-ones)&^b|(d-ones)&^d|w)&highs != 0
}

type scanner struct {
	b     []byte
	i     int
	depth int
}

// decodeFast is json.Unmarshal(body, &p) for payload, in one pass.
func decodeFast(body []byte, p *payload) error {
	s := scanner{b: body}
	s.ws()
	if err := s.payload(p); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return errSyntax
	}
	return nil
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// null consumes a null literal when one is next.
func (s *scanner) null() (bool, error) {
	if s.peek() != 'n' {
		return false, nil
	}
	return true, s.literal("null")
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return errSyntax
	}
	s.i += len(lit)
	return nil
}

// name is a member name, unescaped.
type name struct {
	b     []byte
	ascii bool
}

// is compares a member name with a field name as encoding/json does:
// exactly, or else case-insensitively (bytes.EqualFold). Only two non-ASCII
// runes fold to ASCII letters (the Kelvin sign and the long s), so an ASCII
// name of another length never matches.
func (n name) is(field string) bool {
	if len(n.b) != len(field) && n.ascii {
		return false
	}
	return string(n.b) == field || bytes.EqualFold(n.b, []byte(field))
}

// object reads an object, calling member for each key with the scanner on
// the key's value; member must consume the value.
func (s *scanner) object(member func(key name) error) error {
	if s.peek() != '{' {
		return errType
	}
	if s.depth++; s.depth > maxDepth {
		return errDepth
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if s.peek() != '"' {
			return errSyntax
		}
		key, err := s.key()
		if err != nil {
			return err
		}
		s.ws()
		if s.peek() != ':' {
			return errSyntax
		}
		s.i++
		s.ws()
		if err := member(key); err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// key reads a member name.
func (s *scanner) key() (name, error) {
	raw, simple, err := s.str()
	if err != nil || simple {
		return name{b: raw, ascii: true}, err
	}
	var k string
	if err := json.Unmarshal(s.b[s.i-len(raw)-2:s.i], &k); err != nil {
		return name{}, errSyntax
	}
	n := name{b: []byte(k), ascii: true}
	for _, c := range n.b {
		if c >= 0x80 {
			n.ascii = false
		}
	}
	return n, nil
}

// str reads a string and returns its raw content; simple tells that it has
// only plain bytes, so that the raw content is the value.
func (s *scanner) str() (raw []byte, simple bool, err error) {
	start := s.i + 1
	simple = true
	for i := start; i < len(s.b); i++ {
		// Eight plain bytes at a time: most of a delivery is long URLs.
		for i+8 <= len(s.b) && !special(binary.LittleEndian.Uint64(s.b[i:])) {
			i += 8
		}
		if i >= len(s.b) {
			break
		}
		c := s.b[i]
		if plain[c] {
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], simple, nil
		case c < 0x20:
			return nil, false, errSyntax
		case c == '\\':
			simple = false
			i++
			if i >= len(s.b) {
				return nil, false, errSyntax
			}
			switch s.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.b) {
					return nil, false, errSyntax
				}
				for _, h := range s.b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false, errSyntax
					}
				}
				i += 4
			default:
				return nil, false, errSyntax
			}
		default: // non-ASCII: valid JSON, but encoding/json rewrites invalid UTF-8
			simple = false
		}
	}
	return nil, false, errSyntax
}

// number reads a number literal and returns it.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return nil, errSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, errSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, errSyntax
		}
	}
	s.i = i
	return b[start:i], nil
}

// skip reads and validates any value.
func (s *scanner) skip() error {
	switch c := s.peek(); {
	case c == '{':
		return s.object(func(name) error { return s.skip() })
	case c == '[':
		return s.array(s.skip)
	case c == '"':
		_, _, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		_, err := s.number()
		return err
	}
}

// array reads an array, calling elem with the scanner on each element.
func (s *scanner) array(elem func() error) error {
	if s.peek() != '[' {
		return errType
	}
	if s.depth++; s.depth > maxDepth {
		return errDepth
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// typed reads a value of the kind a field expects: a value of another kind
// is valid JSON (it is skipped, so that a syntax error still wins) but an error.
func (s *scanner) typed(want byte, read func() error) error {
	c := s.peek()
	kind := c
	switch {
	case c == '-' || '0' <= c && c <= '9':
		kind = '0'
	case c == 't' || c == 'f':
		kind = 't'
	}
	if kind == want {
		return read()
	}
	if err := s.skip(); err != nil {
		return err
	}
	return errType
}

// stringField reads a string into dst; null leaves dst as it is.
func (s *scanner) stringField(dst *string) error {
	if isNull, err := s.null(); isNull || err != nil {
		return err
	}
	return s.typed('"', func() error {
		raw, simple, err := s.str()
		if err != nil {
			return err
		}
		if simple {
			*dst = string(raw)
			return nil
		}
		// Escapes or non-ASCII: encoding/json's own unquoting, for the same result.
		if err := json.Unmarshal(s.b[s.i-len(raw)-2:s.i], dst); err != nil {
			return errSyntax
		}
		return nil
	})
}

// intField reads an integer into dst; null leaves dst as it is.
func (s *scanner) intField(dst *int64) error {
	if isNull, err := s.null(); isNull || err != nil {
		return err
	}
	return s.typed('0', func() error {
		raw, err := s.number()
		if err != nil {
			return err
		}
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return errType
		}
		*dst = v
		return nil
	})
}

// numberField hands the raw value to number.UnmarshalJSON, as encoding/json does.
func (s *scanner) numberField(dst *number) error {
	start := s.i
	if err := s.skip(); err != nil {
		return err
	}
	return dst.UnmarshalJSON(s.b[start:s.i])
}

// labelsField reads an array of strings like encoding/json into a []string:
// null sets nil; an element that is null keeps what the slice held there.
func (s *scanner) labelsField(dst *[]string) error {
	if isNull, err := s.null(); isNull || err != nil {
		*dst = nil
		return err
	}
	return s.typed('[', func() error {
		old := *dst
		out := make([]string, 0, 4)
		err := s.array(func() error {
			var v string
			if len(out) < len(old) {
				v = old[len(out)]
			}
			err := s.stringField(&v)
			out = append(out, v)
			return err
		})
		*dst = out
		return err
	})
}

// structField reads an object with member, or null (no change).
func (s *scanner) structField(member func(key name) error) error {
	if isNull, err := s.null(); isNull || err != nil {
		return err
	}
	return s.typed('{', func() error { return s.object(member) })
}

func (s *scanner) payload(p *payload) error {
	if isNull, err := s.null(); isNull || err != nil {
		return err
	}
	return s.typed('{', func() error {
		return s.object(func(key name) error {
			switch {
			case key.is("action"):
				return s.stringField(&p.Action)
			case key.is("workflow_job"):
				if isNull, err := s.null(); isNull || err != nil {
					p.WorkflowJob = nil
					return err
				}
				return s.typed('{', func() error {
					if p.WorkflowJob == nil {
						p.WorkflowJob = &workflowJob{}
					}
					return s.object(func(k name) error { return s.workflowJob(k, p.WorkflowJob) })
				})
			case key.is("repository"):
				return s.structField(func(k name) error {
					switch {
					case k.is("id"):
						return s.intField(&p.Repository.ID)
					case k.is("name"):
						return s.stringField(&p.Repository.Name)
					case k.is("owner"):
						return s.structField(func(k name) error {
							if k.is("login") {
								return s.stringField(&p.Repository.Owner.Login)
							}
							return s.skip()
						})
					}
					return s.skip()
				})
			case key.is("installation"):
				return s.structField(func(k name) error {
					if k.is("id") {
						return s.intField(&p.Installation.ID)
					}
					return s.skip()
				})
			}
			return s.skip()
		})
	})
}

func (s *scanner) workflowJob(k name, j *workflowJob) error {
	switch {
	case k.is("id"):
		return s.intField(&j.ID)
	case k.is("run_id"):
		return s.numberField(&j.RunID)
	case k.is("run_attempt"):
		return s.intField(&j.RunAttempt)
	case k.is("labels"):
		return s.labelsField(&j.Labels)
	case k.is("runner_id"):
		return s.numberField(&j.RunnerID)
	case k.is("runner_name"):
		return s.stringField(&j.RunnerName)
	case k.is("runner_group_id"):
		return s.numberField(&j.RunnerGroupID)
	case k.is("runner_group_name"):
		return s.stringField(&j.RunnerGroupName)
	case k.is("status"):
		return s.stringField(&j.Status)
	case k.is("conclusion"):
		return s.stringField(&j.Conclusion)
	case k.is("name"):
		return s.stringField(&j.Name)
	case k.is("workflow_name"):
		return s.stringField(&j.WorkflowName)
	case k.is("created_at"):
		return s.stringField(&j.CreatedAt)
	case k.is("started_at"):
		return s.stringField(&j.StartedAt)
	case k.is("completed_at"):
		return s.stringField(&j.CompletedAt)
	}
	return s.skip()
}
