// Package tools pins the developer tools (buf, task, grpcurl, staticcheck) in a
// module of their own, so their many dependencies never leak into the relay's
// go.mod. Run them as `go tool -modfile=tools/go.mod NAME`.
package tools
