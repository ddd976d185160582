// Command hostagent keeps a host process attached to relays: it opens idle
// Attach streams, and serves each client session either itself (echo) or by
// forwarding it to a local TCP server (forward HOST:PORT).
package main

import "github.com/relayproject/relay/internal/cli"

func main() { cli.Main("hostagent", run) }
