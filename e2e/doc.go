// Package e2e holds the end-to-end tests of relay: they build the real
// relayd and hostagent binaries once, run them as processes on loopback with
// free ports, and check what a TCP client, a backend behind a forwarding
// agent, and an operator's StatusService client see. Tests wait for events
// (a JSON log line, a byte, an EOF), never for time to pass.
package e2e
