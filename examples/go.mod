module github.com/kyapay/kyapay-go/examples

go 1.26.0

require (
	github.com/kyapay/kyapay-go v0.1.0
	github.com/kyapay/kyapay-go/middleware/kyapaymcp v0.1.0
	github.com/kyapay/kyapay-go/middleware/kyapayprom v0.1.0
	github.com/kyapay/kyapay-go/middleware/kyapayredis v0.1.0
	github.com/modelcontextprotocol/go-sdk v1.8.0
	github.com/prometheus/client_golang v1.25.0
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/google/jsonschema-go v0.4.3 // indirect
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/segmentio/asm v1.2.1 // indirect
	github.com/segmentio/encoding v0.5.4 // indirect
	github.com/yosida95/uritemplate/v3 v3.0.2 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/oauth2 v0.37.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace (
	github.com/kyapay/kyapay-go => ../
	github.com/kyapay/kyapay-go/middleware/kyapaymcp => ../middleware/kyapaymcp
	github.com/kyapay/kyapay-go/middleware/kyapayprom => ../middleware/kyapayprom
	github.com/kyapay/kyapay-go/middleware/kyapayredis => ../middleware/kyapayredis
)
