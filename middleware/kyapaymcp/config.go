package kyapaymcp

import (
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// The names of [mcpgate], which every MCP front end of this library shares.
const (
	// DefaultArgument is the tool argument that carries the token unless
	// [Config.Argument] names another: "skyfire-pay-id".
	DefaultArgument = mcpgate.DefaultArgument
	// DefaultMetaKey is the _meta key that carries the token unless
	// [Config.MetaKey] names another: "xyz.skyfire/pay-id".
	DefaultMetaKey = mcpgate.DefaultMetaKey
	// ToolMetaKey is the key of the *[ToolInfo] in a gated tool's _meta.
	ToolMetaKey = mcpgate.ToolMetaKey
	// ReceiptMetaKey is the key of the *[Receipt] in a charged result's
	// _meta.
	ReceiptMetaKey = mcpgate.ReceiptMetaKey
	// IdempotencyMetaKey is the request _meta key of an idempotency key:
	// "xyz.skyfire/idempotency-key".
	IdempotencyMetaKey = mcpgate.IdempotencyMetaKey
	// ReplayedMetaKey is the result _meta member, true, of a result
	// replayed for a duplicate call: "xyz.skyfire/replayed".
	ReplayedMetaKey = mcpgate.ReplayedMetaKey
)

// Requirement is what one tool demands of the caller's token
// ([mcpgate.Requirement]); a [middleware.ContextPrice] function reads the
// call with [RequestFromContext].
type Requirement = mcpgate.Requirement

// Config configures a [Gate] ([mcpgate.Config]).
type Config = mcpgate.Config

// ToolInfo is the [ToolMetaKey] entry of a gated tool's _meta
// ([mcpgate.ToolInfo]).
type ToolInfo = mcpgate.ToolInfo

// Receipt is the [ReceiptMetaKey] entry of a charged result's _meta
// ([mcpgate.Receipt]).
type Receipt = mcpgate.Receipt

// New returns a Gate that verifies, prices and charges with m, as m does
// for HTTP routes. It reports an invalid configuration as [mcpgate.New]
// does. A Gate is safe for concurrent use.
func New(m *middleware.Middleware, cfg Config) (*Gate, error) {
	core, err := mcpgate.New(m, cfg)
	if err != nil {
		return nil, err
	}
	return &Gate{core: core}, nil
}

// Argument returns the name of the tool argument that carries the token.
func (g *Gate) Argument() string { return g.core.Argument() }

// MetaKey returns the key of the request _meta that carries the token.
func (g *Gate) MetaKey() string { return g.core.MetaKey() }
