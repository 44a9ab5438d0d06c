// Package kyapaymcpgo sells the tools of an MCP server built with
// github.com/mark3labs/mcp-go per call, with Skyfire KYAPay tokens.
package kyapaymcpgo
