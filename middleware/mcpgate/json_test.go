package mcpgate

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestSplitArgument(t *testing.T) {
	const name = "skyfire-pay-id"
	for _, tc := range []struct {
		in, out string
		vals    []argValue
		err     bool
	}{
		{in: ``, out: ``},
		{in: ` `, out: ` `},
		{in: `null`, out: `null`},
		{in: `{}`, out: `{}`},
		{in: `{"a":1}`, out: `{"a":1}`},
		{in: `{"skyfire-pay-id":"ey.a.b"}`, out: `{}`, vals: []argValue{{token: "ey.a.b"}}},
		{in: ` { "a" : 1.50e3 , "skyfire-pay-id" : "t" , "b" : [ "}" , {"skyfire-pay-id":"x"} ] } `,
			out: `{"a" : 1.50e3,"b" : [ "}" , {"skyfire-pay-id":"x"} ]}`, vals: []argValue{{token: "t"}}},
		{in: `{"skyfire\u002dpay-id":"t\u0031"}`, out: `{}`, vals: []argValue{{token: "t1"}}},
		{in: `{"skyfire-pay-id":"a","skyfire-pay-id":"b"}`, out: `{}`, vals: []argValue{{token: "a"}, {token: "b"}}},
		{in: `{"skyfire-pay-id":null,"x":"\"skyfire-pay-id\""}`, out: `{"x":"\"skyfire-pay-id\""}`, vals: []argValue{{}}},
		{in: `{"skyfire-pay-id":12}`, out: `{}`, vals: []argValue{{notString: true}}},
		{in: `{"skyfire-pay-id":{"t":"x"}}`, out: `{}`, vals: []argValue{{notString: true}}},
		{in: `{"Skyfire-Pay-Id":"t"}`, out: `{"Skyfire-Pay-Id":"t"}`},
		{in: `[1]`, err: true},
		{in: `"x"`, err: true},
		{in: `{"a":}`, err: true},
		{in: `{"a":1}{}`, err: true},
	} {
		out, vals, err := splitArgument(json.RawMessage(tc.in), name)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v", tc.in, err)
			continue
		}
		if tc.err {
			continue
		}
		if string(out) != tc.out || !reflect.DeepEqual(vals, tc.vals) {
			t.Errorf("%s:\n got %s %+v\nwant %s %+v", tc.in, out, vals, tc.out, tc.vals)
		}
	}
}

// FuzzSplitArgument checks splitArgument against encoding/json: on any
// object the output is an object without the argument, every other member
// keeps its exact bytes, and the values found are the argument's; anything
// that is not an object, null or empty is refused.
func FuzzSplitArgument(f *testing.F) {
	for _, s := range []string{`{}`, `{"skyfire-pay-id":"ey"}`, `{"a":[1,{"b":"}"}],"skyfire-pay-id":null}`,
		`{"skyfire\u002dpay-id":"x","skyfire-pay-id":"y"}`, `null`, `[]`, `{"a":"\\\""}`, ` {"a" : 1e5 } `} {
		f.Add(s)
	}
	const name = "skyfire-pay-id"
	f.Fuzz(func(t *testing.T, in string) {
		out, vals, err := splitArgument(json.RawMessage(in), name)
		trimmed := strings.Trim(in, " \t\r\n") // JSON white space only
		var members map[string]json.RawMessage
		isObject := json.Valid([]byte(in)) && strings.HasPrefix(trimmed, "{") && json.Unmarshal([]byte(in), &members) == nil
		switch {
		case trimmed == "" || (json.Valid([]byte(in)) && trimmed == "null"):
			if err != nil || string(out) != in || vals != nil {
				t.Fatalf("%q: %q %v %v", in, out, vals, err)
			}
			return
		case !isObject:
			if err == nil {
				t.Fatalf("%q accepted: %q", in, out)
			}
			return
		case err != nil:
			t.Fatalf("%q refused: %v", in, err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q -> %q: %v", in, out, err)
		}
		if _, ok := got[name]; ok {
			t.Fatalf("%q -> %q still has the argument", in, out)
		}
		want, ok := members[name]
		if ok != (len(vals) > 0) {
			t.Fatalf("%q: found %v, encoding/json %v", in, vals, ok)
		}
		if ok {
			// encoding/json keeps the last duplicate.
			last := vals[len(vals)-1]
			var s *string
			if err := json.Unmarshal(want, &s); err != nil {
				if !last.notString {
					t.Fatalf("%q: %s read as %+v", in, want, last)
				}
			} else if last.notString || (s == nil && last.token != "") || (s != nil && *s != last.token) {
				t.Fatalf("%q: %s read as %+v", in, want, last)
			}
		}
		delete(members, name)
		if len(got) != len(members) {
			t.Fatalf("%q -> %q: members %d, want %d", in, out, len(got), len(members))
		}
		for k, v := range members {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%q -> %q: member %q is %s, want %s", in, out, k, got[k], v)
			}
		}
		if len(vals) == 0 && string(out) != in {
			t.Fatalf("%q rewritten to %q without an argument", in, out)
		}
	})
}
