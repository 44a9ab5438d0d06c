package kyapaymcpgo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Advert is the machine-readable entry that tools/list puts in the _meta of
// a gated tool, under [ToolMetaKey]:
//
//	"xyz.skyfire/kyapay": {
//	  "acceptedTokenTypes": ["pay", "kya-pay"],
//	  "pricing": "fixed", "price": "0.01", "currency": "USD",
//	  "chargeTiming": "after",
//	  "argument": "skyfire-pay-id", "header": "skyfire-pay-id",
//	  "metaKey": "xyz.skyfire/pay-id",
//	  "createTokenUrl": "https://docs.skyfire.xyz/reference/create-token"
//	}
type Advert struct {
	// AcceptedTokenTypes lists the token types the tool accepts: "kya",
	// "pay", "kya-pay".
	AcceptedTokenTypes []string `json:"acceptedTokenTypes"`
	// Pricing is "fixed" (Price holds the price), "dynamic" (priced per
	// call by the seller), "service" (the service's price on Skyfire) or
	// "free" (identity only).
	Pricing string `json:"pricing"`
	// Price and Currency state a fixed price, e.g. "0.01" and "USD".
	Price    string `json:"price,omitempty"`
	Currency string `json:"currency,omitempty"`
	// ChargeTiming is "after" (charged once the call succeeded) or
	// "before" (charged before the tool runs) for priced tools.
	ChargeTiming string `json:"chargeTiming,omitempty"`
	// IdentityFields lists the identity fields the token must carry.
	IdentityFields []string `json:"identityFields,omitempty"`
	// Argument, Header and MetaKey name the three places a token may be
	// sent in: the tool argument, the HTTP header, and the request's _meta.
	Argument string `json:"argument"`
	Header   string `json:"header"`
	MetaKey  string `json:"metaKey"`
	// CreateTokenURL documents how to create a token.
	CreateTokenURL string `json:"createTokenUrl"`

	gate *Gate
}

// describe precomputes t's advert and texts.
func (g *Gate) describe(t *tool, base *middleware.Refusal, kind priceKind) {
	ref := &middleware.Refusal{Err: kyapay.ErrTokenMissing, Accepted: t.route.Accepted(), Header: base.Header, SignupURL: base.SignupURL}
	if p, ok := t.route.FixedPrice(); ok {
		ref.Price, ref.HasPrice = p, true
	}
	_, d := g.m.Describe(ref)
	a := &Advert{
		AcceptedTokenTypes: d.AcceptedTokenTypes,
		IdentityFields:     t.route.IdentityFields(),
		Argument:           g.arg,
		Header:             g.header,
		MetaKey:            g.metaKey,
		CreateTokenURL:     d.CreateTokenURL,
		gate:               g,
	}
	if len(a.IdentityFields) == 0 {
		a.IdentityFields = nil
	}
	types := strings.Join(d.AcceptedTokenTypes, ", ")
	var price string
	switch kind {
	case kindFixed:
		a.Pricing, a.Price, a.Currency = "fixed", d.RequiredAmount, "USD"
		price = d.RequiredAmount + " USD per call"
	case kindContext:
		a.Pricing = "dynamic"
		price = "set by the seller for each call"
	case kindService:
		a.Pricing = "service"
		price = "the service's price on Skyfire, per call"
	default:
		a.Pricing = "free"
	}
	var prop, line strings.Builder
	if t.route.Paid() {
		a.ChargeTiming = "after"
		when := "charged only if the call succeeds"
		if t.before {
			a.ChargeTiming, when = "before", "charged before the tool runs"
		}
		fmt.Fprintf(&prop, "Skyfire KYAPay token that pays for this call. Price: %s, %s.", price, when)
		fmt.Fprintf(&line, "Paid tool: %s, paid with a Skyfire token (%s) in the %q argument.", price, types, g.arg)
	} else {
		prop.WriteString("Skyfire KYAPay token that identifies the caller. This tool is free.")
		fmt.Fprintf(&line, "Requires a Skyfire token (%s) in the %q argument.", types, g.arg)
	}
	fmt.Fprintf(&prop, " Accepted token types: %s.", types)
	if len(a.IdentityFields) > 0 {
		fields := strings.Join(a.IdentityFields, ", ")
		fmt.Fprintf(&prop, " The token must carry these identity fields: %s.", fields)
		fmt.Fprintf(&line, " The token must carry these identity fields: %s.", fields)
	}
	fmt.Fprintf(&prop, ` Pass the token itself, a JWT starting with "ey", not its ID. Create one with Skyfire's create-pay-token tool or as described at %s (account: %s).`,
		d.CreateTokenURL, base.SignupURL)
	fmt.Fprintf(&prop, ` A client may instead send it in the %s HTTP header or in _meta %q.`, g.header, g.metaKey)
	t.advert, t.propDesc, t.descLine = a, prop.String(), line.String()
}

// afterList is the tools/list hook: it shows every gated tool with the
// token argument and its price. It decorates copies; the tools mcp-go
// stores are never changed.
func (g *Gate) afterList(_ context.Context, _ any, _ *mcp.ListToolsRequest, res *mcp.ListToolsResult) {
	if res == nil {
		return
	}
	var out []mcp.Tool
	for i, tl := range res.Tools {
		t, ok := g.tools[tl.Name]
		if !ok || g.wrapped(tl) {
			continue
		}
		d, err := g.decorate(tl, t)
		if err != nil {
			// A raw schema that is not an object cannot take the argument;
			// the call is still gated, and the header and _meta still work.
			continue
		}
		if out == nil {
			out = slices.Clone(res.Tools)
		}
		out[i] = d
	}
	if out != nil {
		res.Tools = out
	}
}

// decorate returns tl with the token argument in its input schema, a line
// in its description and the advert in its _meta. tl's maps and slices are
// copied, not changed.
func (g *Gate) decorate(tl mcp.Tool, t *tool) (mcp.Tool, error) {
	if g.wrapped(tl) {
		return tl, nil
	}
	prop := map[string]any{"type": "string", "description": t.propDesc}
	if len(tl.RawInputSchema) > 0 {
		raw, err := addRawProperty(tl.RawInputSchema, g.arg, prop)
		if err != nil {
			return tl, fmt.Errorf("kyapaymcpgo: tool %q: %w", tl.Name, err)
		}
		tl.RawInputSchema = raw
	} else if _, exists := tl.InputSchema.Properties[g.arg]; !exists {
		props := make(map[string]any, len(tl.InputSchema.Properties)+1)
		maps.Copy(props, tl.InputSchema.Properties)
		props[g.arg] = prop
		tl.InputSchema.Properties = props
		if tl.InputSchema.PropertyOrder != nil {
			tl.InputSchema.PropertyOrder = append(slices.Clip(tl.InputSchema.PropertyOrder), g.arg)
		}
		if tl.InputSchema.Type == "" {
			tl.InputSchema.Type = "object"
		}
	}
	if tl.Description == "" {
		tl.Description = t.descLine
	} else {
		tl.Description += "\n\n" + t.descLine
	}
	meta := &mcp.Meta{}
	if tl.Meta != nil {
		meta.ProgressToken = tl.Meta.ProgressToken
		meta.AdditionalFields = maps.Clone(tl.Meta.AdditionalFields)
	}
	if meta.AdditionalFields == nil {
		meta.AdditionalFields = make(map[string]any, 1)
	}
	meta.AdditionalFields[ToolMetaKey] = t.advert
	tl.Meta = meta
	return tl, nil
}

// addRawProperty returns the JSON Schema object raw with the property name
// added to its properties, unless it has one by that name. The other
// members keep their bytes.
func addRawProperty(raw json.RawMessage, name string, prop any) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, errors.New("RawInputSchema is not a JSON object")
	}
	props := map[string]json.RawMessage{}
	if p, ok := obj["properties"]; ok && string(p) != "null" {
		if err := json.Unmarshal(p, &props); err != nil || props == nil {
			return nil, errors.New(`RawInputSchema "properties" is not a JSON object`)
		}
	}
	if _, ok := props[name]; ok {
		return raw, nil
	}
	b, err := json.Marshal(prop)
	if err != nil {
		return nil, err
	}
	props[name] = b
	if obj["properties"], err = json.Marshal(props); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}
