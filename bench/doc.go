// Package bench holds relay's performance measurements: testing.B
// benchmarks of the hot path, in process (one session's bytes through
// clientbridge, the Attach handler, gRPC and the Go SDK; the attachconn
// adapter and splice.Copy on their own), each beside the same workload over
// direct TCP, and, in relayload, the tool that measures real relayd and
// hostagent processes against direct TCP (see docs/performance.md).
//
//	go test -run '^$' -bench . -benchmem ./bench
//	go tool -modfile=tools/go.mod task bench
package bench
