package mcpgate

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// argValue is one occurrence of the token argument in the tool arguments.
type argValue struct {
	// token is the string value, "" for null or an empty string.
	token string
	// notString: the value is neither a string nor null.
	notString bool
}

// splitArgument removes every top-level member named name from args, a
// tool's raw JSON arguments, and returns the arguments without them and the
// values they held. Every other member keeps its exact bytes (numbers are
// never re-encoded), so what the tool's validation and handler see is what
// the client sent minus the argument. When no member is named name, out is
// args itself.
//
// Member names are compared after JSON unescaping, as every JSON decoder
// does, so "skyfire\u002dpay-id" is the argument too. Empty or null
// arguments have no members. Anything else that is not a JSON object is
// ErrArgumentsNotObject.
func splitArgument(args json.RawMessage, name string) (out json.RawMessage, vals []argValue, err error) {
	start := skipSpace(args, 0)
	if start == len(args) {
		return args, nil, nil
	}
	if !json.Valid(args) {
		return nil, nil, ErrArgumentsNotObject
	}
	switch args[start] {
	case '{':
	case 'n': // null (the input is valid JSON, so it is exactly that)
		return args, nil, nil
	default:
		return nil, nil, ErrArgumentsNotObject
	}

	// The input is valid JSON, so the scan below needs no error paths.
	type span struct{ from, to int }
	var spans [16]span // most calls have few arguments: no allocation
	kept := spans[:0]
	i := skipSpace(args, start+1)
	for args[i] != '}' {
		keyFrom := i
		keyTo := skipString(args, i)
		i = skipSpace(args, keyTo)
		i = skipSpace(args, i+1) // ':'
		valFrom := i
		valTo := skipValue(args, i)
		if keyIs(args[keyFrom:keyTo], name) {
			vals = append(vals, decodeArg(args[valFrom:valTo]))
		} else {
			kept = append(kept, span{keyFrom, valTo})
		}
		i = skipSpace(args, valTo)
		if args[i] == ',' {
			i = skipSpace(args, i+1)
		}
	}
	if vals == nil {
		return args, nil, nil
	}
	n := 2
	for _, s := range kept {
		n += s.to - s.from + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for k, s := range kept {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, args[s.from:s.to]...)
	}
	b = append(b, '}')
	return b, vals, nil
}

// keyIs reports whether the JSON string literal lit decodes to name.
func keyIs(lit []byte, name string) bool {
	raw := lit[1 : len(lit)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return false
	}
	return s == name
}

// decodeArg reads the value of a token argument.
func decodeArg(v []byte) argValue {
	switch v[0] {
	case 'n':
		return argValue{}
	case '"':
		if raw := v[1 : len(v)-1]; bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			return argValue{token: string(raw)} // what json.Unmarshal would give, without its cost
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return argValue{notString: true}
		}
		return argValue{token: s}
	}
	return argValue{notString: true}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string literal starting at
// b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	// A number, true, false or null: up to the next delimiter.
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// schemaProperties returns the "properties" member of the input schema s
// (see schemaObject), nil when it has none.
func schemaProperties(s any) (map[string]json.RawMessage, error) {
	obj, err := schemaObject(s)
	if err != nil {
		return nil, err
	}
	return properties(obj)
}

// schemaObject decodes the input schema s, a json.RawMessage or any value
// that encodes as JSON, into its members, each kept as its JSON bytes.
func schemaObject(s any) (map[string]json.RawMessage, error) {
	raw, ok := s.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(s); err != nil {
			return nil, errSchemaNotObject
		}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, errSchemaNotObject
	}
	return obj, nil
}

var (
	errSchemaNotObject     = errors.New("input schema is not a JSON object")
	errPropertiesNotObject = errors.New(`input schema "properties" is not a JSON object`)
)

// properties decodes the "properties" member of a schema object, nil when
// it is absent or null.
func properties(obj map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	p, ok := obj["properties"]
	if !ok || string(p) == "null" {
		return nil, nil
	}
	var props map[string]json.RawMessage
	if json.Unmarshal(p, &props) != nil || props == nil {
		return nil, errPropertiesNotObject
	}
	return props, nil
}
