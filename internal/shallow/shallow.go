// Package shallow keeps long-lived goroutines' stacks small. A goroutine
// keeps the largest stack it ever grew while it waits (Go halves a parked
// stack at a garbage collection only while it uses less than a quarter of
// it), and relay's goroutines wait for a long time: an Attach handler for a
// client, a slot for Open, a receive loop for the next frame. Run moves a
// deep one-time call (a send, decoding Hello, a token check, a log line)
// to a goroutine that ends with it, so that the waiting one stays at its
// first 4 KiB.
package shallow

import (
	"fmt"
	"runtime/debug"
)

// Run calls f on a short-lived goroutine and waits for it to return. A
// panic in f is raised again in the caller, with f's stack in its value,
// so that a recovery interceptor around the caller still sees it.
func Run(f func()) {
	var p any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil {
				p = fmt.Sprintf("%v\n\n(in shallow.Run:)\n%s", v, debug.Stack())
			}
		}()
		f()
	}()
	<-done
	if p != nil {
		panic(p)
	}
}
