package mcpgate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// The _meta members of idempotent tool calls.
const (
	// IdempotencyMetaKey is the key of a tools/call request's _meta that
	// makes a call of a paid tool idempotent
	// (params._meta["xyz.skyfire/idempotency-key"]): the MCP form of the
	// Idempotency-Key header ([middleware.MetaIdempotencyKey]).
	IdempotencyMetaKey = middleware.MetaIdempotencyKey
	// ReplayedMetaKey is the member of a result's _meta, true, that marks
	// a result replayed from an earlier call with the same idempotency key
	// ([middleware.MetaReplayed]).
	ReplayedMetaKey = middleware.MetaReplayed
)

// Idempotency reads the idempotency key of a call of t and fingerprints
// the call, for the IdempotencyKey and Fingerprint of the
// [middleware.Input] that [Gate.Authorize] takes. meta is the call's
// _meta as decoded from JSON; args are its arguments: a json.RawMessage,
// nil, or a value that encodes as a JSON object (the map an SDK decoded).
//
// The key is the string under [IdempotencyMetaKey], in the syntax of the
// Idempotency-Key header ([middleware.ParseIdempotencyKey]): 1 to 255
// visible ASCII characters, or an RFC 9651 quoted string. A key that is
// not a string or not valid is a *[middleware.IdempotencyError] with code
// idempotency_key_invalid: answer the call with [Gate.ErrorResult]
// without authorizing it. A call without a key (absent or null) gets ""
// and runs as before. A tool without a price ignores the key, as an HTTP
// route without a price ignores the header, and gets "" too.
//
// The fingerprint is [middleware.Fingerprint] of "tools/call", the tool's
// name and the arguments in a canonical form: without the token argument,
// members sorted by name, no white space, strings escaped one way, numbers
// as written (1 and 1.0 differ); absent and null arguments are {}. So a
// retry that carries the token elsewhere, or whose client orders the
// members differently, is the same call; other arguments are another call.
// Arguments that are not a JSON object are [ErrArgumentsNotObject].
func (t *Tool) Idempotency(meta map[string]any, args any) (key string, fp [32]byte, err error) {
	if t == nil || !t.route.Paid() {
		return "", fp, nil
	}
	v, ok := meta[IdempotencyMetaKey]
	if !ok || v == nil {
		return "", fp, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fp, errKeyInvalid
	}
	if key, err = middleware.ParseIdempotencyKey(s); err != nil {
		return "", fp, errKeyInvalid
	}
	canon, err := canonicalArguments(args, t.gate.arg)
	if err != nil {
		return "", fp, err
	}
	return key, middleware.Fingerprint("tools/call", t.name, canon), nil
}

// errKeyInvalid refuses a call whose _meta holds an idempotency key that
// is not a valid one.
var errKeyInvalid = &middleware.IdempotencyError{
	Code:    middleware.CodeIdempotencyKeyInvalid,
	Status:  http.StatusBadRequest,
	Message: "The idempotency key is invalid.",
}

// canonicalArguments returns args, a call's arguments (see
// Tool.Idempotency), as one JSON text per value: the object without the
// member drop, its members sorted by name and compact, strings escaped as
// encoding/json escapes them, numbers as written.
func canonicalArguments(args any, drop string) ([]byte, error) {
	var raw []byte
	switch a := args.(type) {
	case nil:
	case json.RawMessage:
		raw = a
	case []byte:
		raw = a
	default:
		b, err := json.Marshal(a)
		if err != nil {
			return nil, ErrArgumentsNotObject
		}
		raw = b
	}
	if skipSpace(raw, 0) == len(raw) {
		return []byte("{}"), nil
	}
	if !json.Valid(raw) {
		return nil, ErrArgumentsNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, ErrArgumentsNotObject
	}
	switch obj := v.(type) {
	case nil:
		return []byte("{}"), nil
	case map[string]any:
		delete(obj, drop)
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, ErrArgumentsNotObject
		}
		return b, nil
	}
	return nil, ErrArgumentsNotObject
}

// IdempotencyDetail is the structuredContent of the tool error result that
// answers a call whose idempotency key cannot be honoured
// ([Gate.ErrorResult]); nothing was charged and the tool did not run. In
// JSON: {"error": "idempotency_conflict", "message": "ERROR: ...",
// "retryAfterSeconds": 1}.
type IdempotencyDetail struct {
	// Error is the code: idempotency_key_invalid (the key is not a valid
	// one), idempotency_conflict (a call with the key is still running, or
	// its charge is being reconciled: retry after RetryAfterSeconds with the
	// same key, do not pay again) or idempotency_key_reused (the key was
	// used for a call of the tool with other arguments).
	Error kyapay.Code `json:"error"`
	// Message is the caller-facing text.
	Message string `json:"message"`
	// RetryAfterSeconds is when to retry a conflict, in whole seconds (at
	// least 1); absent otherwise.
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
}

// idempotencyDetail describes e for a tool call.
func idempotencyDetail(e *middleware.IdempotencyError) *IdempotencyDetail {
	d := &IdempotencyDetail{Error: e.Code}
	switch e.Code {
	case middleware.CodeIdempotencyKeyInvalid:
		d.Message = `The idempotency key in _meta["` + IdempotencyMetaKey + `"] is invalid: send a string of 1 to 255 visible ASCII characters.`
	case middleware.CodeIdempotencyConflict:
		d.RetryAfterSeconds = int(max((e.RetryAfter+time.Second-1)/time.Second, 1))
		d.Message = "A call with this idempotency key is still in progress, or its payment is being reconciled. Retry in " +
			strconv.Itoa(d.RetryAfterSeconds) + " s with the same key; do not pay again."
	case middleware.CodeIdempotencyKeyReused:
		d.Message = "This idempotency key was used for a call of this tool with other arguments. Use a new key for a new call."
	default:
		d.Message = e.Message
	}
	d.Message = "ERROR: " + d.Message
	return d
}

// ErrorResult returns the text content and the structuredContent of the
// tool error result (isError) that answers err, an error of
// [Tool.Idempotency], [Gate.Authorize] or the grant's Commit. A
// *[middleware.IdempotencyError] is described by an *[IdempotencyDetail]
// (the text is its Message); any other error by the
// [middleware.RefusalDetail] of [Gate.RefusalDetail].
func (g *Gate) ErrorResult(err error) (text string, structured any) {
	var ie *middleware.IdempotencyError
	if errors.As(err, &ie) && ie != nil {
		d := idempotencyDetail(ie)
		return d.Message, d
	}
	d := g.RefusalDetail(err)
	return d.Message, d
}

// ReplayMeta returns a copy of meta, the _meta of a stored result that
// grant replays ([middleware.Grant.Replay]), with [ReplayedMetaKey] true
// and, when meta holds no [ReceiptMetaKey] entry, the *[Receipt] of the
// earlier charge (a result stored while the outcome of its charge was
// unknown has none). meta is never changed.
func ReplayMeta(meta map[string]any, grant *middleware.Grant) map[string]any {
	out := withEntry(meta, ReplayedMetaKey, true)
	if _, ok := meta[ReceiptMetaKey]; !ok && grant != nil {
		if rc, ok := grant.Receipt(); ok {
			out[ReceiptMetaKey] = NewReceipt(rc)
		}
	}
	return out
}

// Finish records how a call with an idempotency key ended
// ([middleware.Grant.Finish]), once the tool returned and, for a pending
// grant, Commit returned or the grant was abandoned. result is the tool
// result the call delivers, receipt included, which is stored as JSON for
// replay: a duplicate call gets it back, marked with [ReplayedMetaKey].
// Pass nil when there is no result to replay (the tool failed with an
// error, or its result asks for more input); a charged call then runs the
// tool again for a duplicate, without charging. A result that does not
// encode as JSON, or whose JSON is larger than the Middleware's
// [middleware.Config] MaxReplayBytes, is not stored either. Finish does nothing for a grant
// without a key, and after the first call. Its error is for logs.
func Finish(ctx context.Context, grant *middleware.Grant, result any) error {
	var b []byte
	if result != nil {
		if enc, err := json.Marshal(result); err == nil && string(enc) != "null" {
			b = enc
		}
	}
	return grant.Finish(ctx, b)
}
