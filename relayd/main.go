// Command relayd is the relay daemon: host processes behind NAT attach to
// its gRPC port, raw TCP clients connect to its client port, and it bridges
// each client into one attached stream. See the README for the tour.
package main

import "github.com/relayproject/relay/internal/cli"

func main() { cli.Main("relayd", run) }
