module github.com/kyapay/kyapay-go/middleware/kyapaymcp

go 1.25.0

require (
	github.com/google/jsonschema-go v0.4.3
	github.com/kyapay/kyapay-go v0.1.0
	github.com/modelcontextprotocol/go-sdk v1.8.0
)

require (
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/segmentio/asm v1.2.1 // indirect
	github.com/segmentio/encoding v0.5.4 // indirect
	github.com/yosida95/uritemplate/v3 v3.0.2 // indirect
	golang.org/x/oauth2 v0.35.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/kyapay/kyapay-go => ../..
