// Command caddy shows, with one command, a seller selling an unchanged
// HTTP API and MCP server to AI agents through Caddy and the kyapay
// module: it starts a fake Skyfire (issuer and charge API), the example
// upstream, and Caddy in this process with the Caddyfile beside this file,
// then runs a curl session against the gateway and prints it. It exits 0
// when every step answered as expected.
//
//	go -C examples/caddy run .
//
// With -upstream ADDR it only serves the example upstream, for a Caddy
// built with xcaddy and run with the same Caddyfile:
//
//	go -C examples/caddy run . -upstream 127.0.0.1:9000
//	SKYFIRE_SELLER_ID=... SKYFIRE_API_KEY=... ./caddy run --config examples/caddy/Caddyfile
//
// curl is used when it is installed; otherwise the requests are sent with
// Go's HTTP client and printed the same way.
package main

import (
	"bytes"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	_ "github.com/kyapay/kyapay-go/middleware/kyapaycaddy"
)

//go:embed Caddyfile
var caddyfile []byte

// sellerID is the demo seller's agent ID.
const sellerID = "demo-seller"

func main() {
	only := flag.String("upstream", "", "only serve the example upstream on this address")
	flag.Parse()
	if *only != "" {
		log.Printf("example upstream on http://%s", *only)
		log.Fatal(http.ListenAndServe(*only, upstream()))
	}
	os.Exit(run(os.Stdout))
}

// step is one request of the session.
type step struct {
	say     string
	method  string
	path    string
	headers []string // name, value pairs; a value may be $PAY, $KYA, $EMPTY
	body    string
	want    int
	check   string // the body must contain it
}

func run(out io.Writer) int {
	tmp, err := os.MkdirTemp("", "kyapay-caddy-demo")
	if err != nil {
		fmt.Fprintln(out, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience(sellerID))
	defer iss.Close()
	up := httptest.NewServer(upstream())
	defer up.Close()
	gw, err := freeAddr()
	if err != nil {
		fmt.Fprintln(out, err)
		return 1
	}
	for k, v := range map[string]string{
		"CADDY_ADMIN": "off", "CADDY_LOG": "discard",
		"XDG_CONFIG_HOME": tmp, "XDG_DATA_HOME": tmp, // keep Caddy's files out of $HOME
		"GATEWAY_ADDR": gw, "UPSTREAM_ADDR": strings.TrimPrefix(up.URL, "http://"),
		"SKYFIRE_ISSUER": iss.Issuer(), "SKYFIRE_API_URL": iss.APIBaseURL(),
		"SKYFIRE_SELLER_ID": sellerID, "SKYFIRE_API_KEY": iss.APIKey(),
	} {
		os.Setenv(k, v)
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile, map[string]any{"filename": "Caddyfile"})
	if err == nil {
		err = caddy.Load(cfg, true)
	}
	if err != nil {
		fmt.Fprintln(out, "starting Caddy:", err)
		return 1
	}
	defer caddy.Stop()

	tokens := map[string]string{
		"$PAY":      iss.Mint(kyapay.TypePay, kyapaytest.Subject("agent-007")),
		"$KYA":      iss.Mint(kyapay.TypeKYA, kyapaytest.Subject("agent-007"), kyapaytest.Email("ada@example.com")),
		"$DEPLETED": iss.Mint(kyapay.TypePay, kyapaytest.Balance("0.005")),
	}
	fmt.Fprintf(out, "Caddy serves http://%s with the Caddyfile beside main.go; a fake Skyfire minted\n", gw)
	fmt.Fprintln(out, "$PAY (a pay token, 10 USD), $KYA (identity, with an email) and $DEPLETED (0.005 USD left).")

	const call = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":{"q":"caddy"}}}`
	jsonHdr := []string{"Content-Type", "application/json"}
	steps := []step{
		{say: "No token: Skyfire's 402 text; the upstream is not called.", path: "/api/quote", want: 402, check: "Missing pay token"},
		{say: "A pay token: charged 0.01 USD, then proxied. The upstream sees the buyer, never the token.",
			path: "/api/quote", headers: []string{"skyfire-pay-id", "$PAY"}, want: 200, check: `"charged":"0.01"`},
		{say: "Headers in the Kyapay- namespace sent by a client are dropped before the upstream.",
			path: "/api/quote", headers: []string{"skyfire-pay-id", "$PAY", "Kyapay-Subject", "someone-else", "Kyapay-Forged", "yes"}, want: 200, check: `"buyer":"agent-007"`},
		{say: "Charge after: the upstream fails, so nothing is charged.", path: "/api/report?fail=1", headers: []string{"skyfire-pay-id", "$PAY"}, want: 500},
		{say: "Charge after: the report is delivered and charged 0.05 USD.", path: "/api/report", headers: []string{"skyfire-pay-id", "$PAY"}, want: 200, check: `"price_if_delivered":"0.05"`},
		{say: "An identity route: a kya token carrying the buyer's email.", path: "/api/profile", headers: []string{"skyfire-pay-id", "$KYA"}, want: 200, check: "ada@example.com"},
		{say: "A depleted token is refused.", path: "/api/quote", headers: []string{"skyfire-pay-id", "$DEPLETED"}, want: 402, check: "depleted"},
		{say: "MCP: tools/list is free.", method: "POST", path: "/mcp", headers: jsonHdr, body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, want: 200, check: `"fetch"`},
		{say: "MCP: a paid tool without a token gets a JSON-RPC refusal with the price.", method: "POST", path: "/mcp", headers: jsonHdr,
			body: fmt.Sprintf(call, "fetch"), want: 402, check: `"requiredAmount":"0.05"`},
		{say: "MCP: tools/call fetch with the pay token, charged 0.05 USD.", method: "POST", path: "/mcp",
			headers: append([]string{"skyfire-pay-id", "$PAY"}, jsonHdr...), body: fmt.Sprintf(call, "fetch"), want: 200, check: "charged 0.05"},
	}

	_, err = exec.LookPath("curl")
	useCurl := err == nil
	if !useCurl {
		fmt.Fprintln(out, "(curl is not installed: sending the same requests with Go's HTTP client)")
	}
	failed := 0
	for i, s := range steps {
		fmt.Fprintf(out, "\n# %d. %s\n", i+1, s.say)
		fmt.Fprintf(out, "$ %s\n", s.command(gw))
		status, body, err := s.send(gw, tokens, useCurl)
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			failed++
			continue
		}
		fmt.Fprintf(out, "%s\n[HTTP %d]\n", strings.TrimRight(shorten(body), "\n"), status)
		if status != s.want || !strings.Contains(body, s.check) {
			fmt.Fprintf(out, "UNEXPECTED: want HTTP %d with %q\n", s.want, s.check)
			failed++
		}
	}

	fmt.Fprintln(out, "\n# Skyfire's ledger (the fake issuer's record of charges):")
	var amounts []string
	for _, c := range iss.Charges() {
		amounts = append(amounts, c.Amount.String())
	}
	fmt.Fprintf(out, "%d charges: %s USD\n", len(amounts), strings.Join(amounts, ", "))
	if got := strings.Join(amounts, ","); got != "0.01,0.01,0.05,0.05" {
		fmt.Fprintln(out, "UNEXPECTED: want 0.01, 0.01, 0.05, 0.05")
		failed++
	}
	if failed > 0 {
		fmt.Fprintf(out, "\n%d step(s) did not behave as expected\n", failed)
		return 1
	}
	fmt.Fprintln(out, "\nEvery step behaved as expected.")
	return 0
}

// command is the step as a curl command line, tokens left as variables.
func (s step) command(gw string) string {
	var b strings.Builder
	b.WriteString("curl")
	if s.method != "" {
		b.WriteString(" -X " + s.method)
	}
	for i := 0; i+1 < len(s.headers); i += 2 {
		fmt.Fprintf(&b, ` -H "%s: %s"`, s.headers[i], s.headers[i+1])
	}
	if s.body != "" {
		fmt.Fprintf(&b, " -d '%s'", s.body)
	}
	u := "http://" + gw + s.path
	if strings.ContainsAny(u, "?&") {
		u = "'" + u + "'"
	}
	b.WriteString(" " + u)
	return b.String()
}

// send runs the step with curl (or Go's client) and returns the status
// and body.
func (s step) send(gw string, tokens map[string]string, useCurl bool) (int, string, error) {
	url := "http://" + gw + s.path
	method := s.method
	if method == "" {
		method = http.MethodGet
	}
	hdr := make([]string, len(s.headers))
	for i, v := range s.headers {
		if t, ok := tokens[v]; ok {
			v = t
		}
		hdr[i] = v
	}
	if useCurl {
		args := []string{"-sS", "-X", method, "-w", "\n%{http_code}"}
		for i := 0; i+1 < len(hdr); i += 2 {
			args = append(args, "-H", hdr[i]+": "+hdr[i+1])
		}
		if s.body != "" {
			args = append(args, "--data-raw", s.body)
		}
		outb, err := exec.Command("curl", append(args, url)...).Output()
		if err != nil {
			return 0, "", fmt.Errorf("curl: %w", err)
		}
		text := string(outb)
		i := strings.LastIndexByte(text, '\n')
		status, err := strconv.Atoi(text[i+1:])
		return status, text[:i], err
	}
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(s.body)))
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// shorten cuts Skyfire's long refusal texts after their first sentence.
func shorten(body string) string {
	if strings.HasPrefix(body, "ERROR: ") {
		if i := strings.Index(body, ". "); i > 0 {
			return body[:i+1] + " …"
		}
	}
	return body
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
