package kyapaycaddy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kyapay/kyapay-go/middleware"
)

// mcpRoutes is the compiled MCP configuration of a handler.
type mcpRoutes struct {
	maxBody int64
	tools   map[string]toolRoute
}

// toolRoute is the gate of one listed tool: open (no token), or a route.
type toolRoute struct {
	open  bool
	route *middleware.Route
}

// route reads the JSON-RPC body of r (restoring it for the upstream) and
// returns the gate for it: open is true for requests that pass without a
// token (no body, any method but tools/call, an open tool); otherwise the
// listed tool's route, or def for tools not listed. A body that cannot be
// read for certain is refused with a 4xx error and not forwarded, so that
// no reading of it the upstream might make escapes the gate.
func (m *mcpRoutes) route(r *http.Request, def *middleware.Route) (rt *middleware.Route, open bool, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, true, nil
	}
	if r.ContentLength > m.maxBody {
		return nil, false, caddyhttp.Error(http.StatusRequestEntityTooLarge, fmt.Errorf("kyapay: mcp: request body of %d bytes is larger than max_body (%d)", r.ContentLength, m.maxBody))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, m.maxBody+1))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, false, caddyhttp.Error(http.StatusRequestEntityTooLarge, err)
		}
		return nil, false, caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("kyapay: mcp: reading the request body: %w", err))
	}
	if int64(len(body)) > m.maxBody {
		return nil, false, caddyhttp.Error(http.StatusRequestEntityTooLarge, fmt.Errorf("kyapay: mcp: request body is larger than max_body (%d)", m.maxBody))
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil

	call, err := parseRPC(body)
	if err != nil {
		return nil, false, caddyhttp.Error(http.StatusBadRequest, err)
	}
	if !call.toolCall {
		return nil, true, nil
	}
	t, ok := m.tools[call.tool]
	switch {
	case !ok:
		return def, false, nil
	case t.open:
		return nil, true, nil
	}
	return t.route, false, nil
}

// rpcCall is what the gate needs to know of a JSON-RPC request body.
type rpcCall struct {
	// toolCall: the body is a tools/call request.
	toolCall bool
	// tool is its params.name.
	tool string
}

// errors of parseRPC; their texts reach the error log, never the client.
var (
	errRPCInvalid = errors.New("kyapay: mcp: the request body is not a JSON-RPC message")
	errRPCBatch   = errors.New("kyapay: mcp: a JSON-RPC batch with a tools/call is not accepted; send each tools/call on its own")
)

// parseRPC reads a JSON-RPC request body: one message object or a batch
// (array) of them. It is strict where a lenient reading could differ from
// the upstream's: the body must be valid UTF-8 and exactly one JSON value;
// "method", "params" and "name" (in the params of a tools/call) must
// appear at most once, with no other spelling of them in another case
// (which case-insensitive decoders such as Go's encoding/json would
// match), the method must be a string, and a tools/call must name its
// tool with a string. A batch may not contain a tools/call.
func parseRPC(body []byte) (rpcCall, error) {
	if !utf8.Valid(body) {
		return rpcCall{}, errRPCInvalid
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return rpcCall{}, errRPCInvalid
	}
	var call rpcCall
	switch tok {
	case json.Delim('{'):
		if call, err = parseMessage(dec); err != nil {
			return rpcCall{}, err
		}
	case json.Delim('['):
		n := 0
		for dec.More() {
			if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
				return rpcCall{}, errRPCInvalid
			}
			c, err := parseMessage(dec)
			if err != nil {
				return rpcCall{}, err
			}
			if c.toolCall {
				return rpcCall{}, errRPCBatch
			}
			n++
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim(']') || n == 0 {
			return rpcCall{}, errRPCInvalid
		}
	default:
		return rpcCall{}, errRPCInvalid
	}
	if _, err := dec.Token(); err != io.EOF {
		return rpcCall{}, errRPCInvalid
	}
	return call, nil
}

// parseMessage reads one message object after its '{', through its '}'.
func parseMessage(dec *json.Decoder) (rpcCall, error) {
	var method string
	var params json.RawMessage
	var haveMethod, haveParams bool
	err := eachMember(dec, func(key string) error {
		switch {
		case key == "method" && !haveMethod:
			haveMethod = true
			tok, err := dec.Token()
			if err != nil {
				return errRPCInvalid
			}
			s, ok := tok.(string)
			if !ok {
				return fmt.Errorf("kyapay: mcp: the JSON-RPC method is not a string")
			}
			method = s
			return nil
		case key == "params" && !haveParams:
			haveParams = true
			return dec.Decode(&params)
		case strings.EqualFold(key, "method") || strings.EqualFold(key, "params"):
			return fmt.Errorf("kyapay: mcp: the JSON-RPC message has a second %q member or another spelling of it", strings.ToLower(key))
		}
		return skip(dec)
	})
	if err != nil {
		return rpcCall{}, err
	}
	if method != "tools/call" {
		return rpcCall{}, nil
	}
	name, err := toolName(params)
	if err != nil {
		return rpcCall{}, err
	}
	return rpcCall{toolCall: true, tool: name}, nil
}

// toolName reads params.name of a tools/call.
func toolName(params json.RawMessage) (string, error) {
	errNoName := errors.New("kyapay: mcp: a tools/call without a string params.name")
	if len(params) == 0 {
		return "", errNoName
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", errNoName
	}
	var name string
	var haveName bool
	err := eachMember(dec, func(key string) error {
		switch {
		case key == "name" && !haveName:
			haveName = true
			tok, err := dec.Token()
			if err != nil {
				return errRPCInvalid
			}
			s, ok := tok.(string)
			if !ok {
				return errNoName
			}
			name = s
			return nil
		case strings.EqualFold(key, "name"):
			return errors.New("kyapay: mcp: the tools/call params have a second \"name\" member or another spelling of it")
		}
		return skip(dec)
	})
	if err != nil {
		return "", err
	}
	if !haveName {
		return "", errNoName
	}
	return name, nil
}

// eachMember calls f with each member key of the object whose '{' was just
// read, with dec positioned at the member's value, which f must consume;
// it then reads the closing '}'.
func eachMember(dec *json.Decoder, f func(key string) error) error {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errRPCInvalid
		}
		key, ok := tok.(string)
		if !ok {
			return errRPCInvalid
		}
		if err := f(key); err != nil {
			if errors.Is(err, io.EOF) || isSyntax(err) {
				return errRPCInvalid
			}
			return err
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return errRPCInvalid
	}
	return nil
}

// skip consumes one JSON value.
func skip(dec *json.Decoder) error {
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return errRPCInvalid
	}
	return nil
}

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF)
}
