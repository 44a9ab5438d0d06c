package kyapaycaddy

import (
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("kyapay", parseGlobal)
	httpcaddyfile.RegisterHandlerDirective("kyapay", parseDirective)
	// With the authentication directives: before handle, route, respond,
	// reverse_proxy and file_server, so that a kyapay directive guards a
	// site's handle and route blocks too instead of being skipped by them.
	httpcaddyfile.RegisterDirectiveOrder("kyapay", httpcaddyfile.After, "forward_auth")
}

// parseGlobal parses the global option
//
//	kyapay {
//		<settings>
//	}
func parseGlobal(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // the option name
	if existing != nil {
		return nil, d.Err("kyapay: the global option is given twice")
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	s := new(Settings)
	for d.NextBlock(0) {
		ok, err := s.unmarshalSetting(d)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, d.Errf("kyapay: unknown global subdirective %q (route settings such as price belong in the kyapay directive)", d.Val())
		}
	}
	return s, nil
}

// parseDirective parses the kyapay directive on top of the global option.
func parseDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	k := new(Handler)
	if g, ok := h.Option("kyapay").(*Settings); ok && g != nil {
		k.Settings = *g
		k.Issuers = slices.Clone(g.Issuers)
	}
	if err := k.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return k, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	kyapay [<matcher>] [<price>] {
//		<settings>
//		types     kya|pay|kya-pay...
//		identity  <hid field>...
//		price     <amount>|service
//		timing    before|after
//		format    auto|text|json
//		name      <route name>
//		mcp {
//			max_body  <size>
//			tool      <name> <amount>|service|free|open
//		}
//	}
//
// Settings given here override those of the global option. See the
// package documentation for each subdirective.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		h.Price = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		ok, err := h.Settings.unmarshalSetting(d)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		switch d.Val() {
		case "types":
			h.Types = d.RemainingArgs()
			if len(h.Types) == 0 {
				return d.ArgErr()
			}
		case "identity":
			h.Identity = d.RemainingArgs()
			if len(h.Identity) == 0 {
				return d.ArgErr()
			}
		case "price", "timing", "format", "name":
			field := map[string]*string{"price": &h.Price, "timing": &h.Timing, "format": &h.Format, "name": &h.Name}[d.Val()]
			if err := oneArg(d, field); err != nil {
				return err
			}
		case "mcp":
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.MCP == nil {
				h.MCP = new(MCP)
			}
			if err := h.MCP.unmarshal(d); err != nil {
				return err
			}
		default:
			return d.Errf("kyapay: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

// unmarshal parses the mcp block.
func (m *MCP) unmarshal(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "max_body":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > 1<<40 {
				return d.Errf("kyapay: mcp: max_body: %q is not a size such as 1MiB", s)
			}
			m.MaxBody = int64(n)
		case "tool":
			var name, price string
			if !d.Args(&name, &price) || d.NextArg() {
				return d.Err("kyapay: mcp: tool: want tool <name> <amount>|service|free|open")
			}
			if m.Tools == nil {
				m.Tools = make(map[string]string)
			}
			if _, dup := m.Tools[name]; dup {
				return d.Errf("kyapay: mcp: tool %q is priced twice", name)
			}
			m.Tools[name] = price
		default:
			return d.Errf("kyapay: mcp: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

// unmarshalSetting parses one settings subdirective at d, and reports
// false if d.Val() is not one.
func (s *Settings) unmarshalSetting(d *caddyfile.Dispenser) (bool, error) {
	var err error
	switch d.Val() {
	case "env":
		err = oneArg(d, &s.Env)
	case "issuer", "issuers":
		s.Issuers = d.RemainingArgs()
		if len(s.Issuers) == 0 {
			err = d.ArgErr()
		}
	case "seller_id":
		err = oneArg(d, &s.SellerID)
	case "insecure_any_audience":
		if d.NextArg() {
			err = d.ArgErr()
		}
		s.InsecureAnyAudience = true
	case "service_id":
		err = oneArg(d, &s.ServiceID)
	case "api_key":
		err = oneArg(d, &s.APIKey)
	case "api_key_file":
		err = oneArg(d, &s.APIKeyFile)
	case "api_url":
		err = oneArg(d, &s.APIURL)
	case "redis":
		err = oneArg(d, &s.Redis)
	case "header":
		err = oneArg(d, &s.Header)
	case "status_policy":
		err = oneArg(d, &s.StatusPolicy)
	case "charge_timeout":
		var v string
		if err = oneArg(d, &v); err == nil {
			dur, perr := caddy.ParseDuration(v)
			if perr != nil {
				return true, d.Errf("kyapay: charge_timeout: %v", perr)
			}
			s.ChargeTimeout = caddy.Duration(dur)
		}
	case "max_buffer":
		var v string
		if err = oneArg(d, &v); err == nil {
			n, perr := humanize.ParseBytes(v)
			if perr != nil || n == 0 || n > 1<<40 {
				return true, d.Errf("kyapay: max_buffer: %q is not a size such as 16MiB", v)
			}
			s.MaxBuffer = int(n)
		}
	default:
		return false, nil
	}
	return true, err
}

// oneArg reads exactly one argument into dst.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("kyapay: %s: want one argument", name)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("kyapay: %s: want one argument, got more", name)
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
