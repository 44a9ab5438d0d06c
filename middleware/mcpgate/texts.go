package mcpgate

import (
	"strings"

	"github.com/kyapay/kyapay-go/middleware"
)

// ToolInfo is the [ToolMetaKey] entry of a gated tool's _meta in
// tools/list: what the tool demands, for programs (a model reads the
// argument's description instead). In JSON:
//
//	"xyz.skyfire/kyapay": {
//	  "acceptedTokenTypes": ["pay", "kya-pay"], "paid": true,
//	  "requiredAmount": "0.01", "currency": "USD", "chargeTiming": "after",
//	  "argument": "skyfire-pay-id", "header": "skyfire-pay-id",
//	  "metaKey": "xyz.skyfire/pay-id",
//	  "createTokenUrl": "https://docs.skyfire.xyz/reference/create-token"
//	}
type ToolInfo struct {
	// AcceptedTokenTypes lists the accepted token types: "kya", "pay",
	// "kya-pay".
	AcceptedTokenTypes []string `json:"acceptedTokenTypes"`
	// IdentityFields lists the hid fields the token must carry.
	IdentityFields []string `json:"identityFields,omitempty"`
	// Paid reports whether calls are charged.
	Paid bool `json:"paid"`
	// RequiredAmount and Currency state a fixed price per call; they are
	// absent when the price is set per call ([middleware.ContextPrice]) or
	// by the Skyfire service ([middleware.ServicePrice]).
	RequiredAmount string `json:"requiredAmount,omitempty"`
	Currency       string `json:"currency,omitempty"`
	// ChargeTiming is when a paid call is charged: "after" (only a final,
	// successful result) or "before" (before the tool runs).
	ChargeTiming string `json:"chargeTiming,omitempty"`
	// Argument, Header and MetaKey are where the token may travel: the
	// tool argument, the HTTP header, the request _meta key.
	Argument string `json:"argument"`
	Header   string `json:"header"`
	MetaKey  string `json:"metaKey"`
	// CreateTokenURL documents how to create a token.
	CreateTokenURL string `json:"createTokenUrl"`

	// tool is the compiled tool this entry describes, and names its gate.
	tool *Tool
}

func (g *Gate) toolInfo(t *Tool) *ToolInfo {
	rt := t.route
	info := &ToolInfo{
		AcceptedTokenTypes: rt.Accepted().Names(),
		IdentityFields:     rt.IdentityFields(),
		Paid:               rt.Paid(),
		Argument:           g.arg,
		Header:             g.header,
		MetaKey:            g.metaKey,
		CreateTokenURL:     middleware.DefaultCreateTokenURL,
		tool:               t,
	}
	if info.Paid {
		info.ChargeTiming = rt.Timing().String()
		if p, ok := rt.FixedPrice(); ok {
			info.RequiredAmount, info.Currency = p.String(), "USD"
		}
	}
	return info
}

// argumentText is the description of the token argument, for a model:
// what to pass, what it costs, where to get one, where else it may go.
func (g *Gate) argumentText(info *ToolInfo) string {
	var b strings.Builder
	b.WriteString("Skyfire KYAPay token for this tool: a ")
	b.WriteString(orList(info.AcceptedTokenTypes))
	b.WriteString(` token, the JWT itself (it starts with "ey"), not its ID.`)
	if info.Paid {
		b.WriteString(" Each call ")
		if info.RequiredAmount != "" {
			b.WriteString("costs " + info.RequiredAmount + " USD")
		} else {
			b.WriteString("has a price set per call")
		}
		b.WriteString(", " + chargeWhen(info) + ".")
	} else {
		b.WriteString(" Calls are not charged.")
	}
	b.WriteString(identityText(info))
	b.WriteString(" Create one with Skyfire (" + info.CreateTokenURL + "; account at " + g.signupURL + ").")
	b.WriteString(" Clients may send it in the " + g.header + ` HTTP header or in _meta["` + g.metaKey + `"] instead.`)
	return b.String()
}

// descriptionLine is the line added to a gated tool's description, for
// models that read descriptions only.
func descriptionLine(info *ToolInfo) string {
	var b strings.Builder
	if info.Paid {
		b.WriteString("Paid tool: ")
		if info.RequiredAmount != "" {
			b.WriteString(info.RequiredAmount + " USD per call")
		} else {
			b.WriteString("priced per call")
		}
		b.WriteString(", " + chargeWhen(info) + ". Pass a Skyfire KYAPay token (")
	} else {
		b.WriteString("Requires a Skyfire KYAPay token (")
	}
	b.WriteString(orList(info.AcceptedTokenTypes) + `) in the "` + info.Argument + `" argument.`)
	b.WriteString(identityText(info))
	return b.String()
}

func chargeWhen(info *ToolInfo) string {
	if info.ChargeTiming == middleware.ChargeBefore.String() {
		return "charged before the tool runs"
	}
	return "charged only when the call succeeds"
}

func identityText(info *ToolInfo) string {
	if len(info.IdentityFields) == 0 {
		return ""
	}
	return " The token must carry these identity fields: " + strings.Join(info.IdentityFields, ", ") + "."
}

// orList joins words for a sentence: "kya, pay or kya-pay".
func orList(l []string) string {
	if len(l) <= 1 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}
