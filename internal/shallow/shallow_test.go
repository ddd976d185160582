package shallow

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunCallsAndWaits(t *testing.T) {
	done := false
	Run(func() { done = true })
	if !done {
		t.Fatal("Run returned before f did")
	}
}

// A panic in f reaches the caller, where a recovery interceptor sees it,
// with f's stack.
func TestRunRaisesPanicInCaller(t *testing.T) {
	defer func() {
		p := recover()
		s, ok := p.(string)
		if !ok || !strings.HasPrefix(s, "boom") || !strings.Contains(s, "shallow_test.go") {
			t.Fatalf("recovered %v, want the panic value and f's stack", p)
		}
	}()
	Run(func() { panic("boom") })
	t.Fatal("Run returned after a panic")
}

// goroutineID returns the running goroutine's id, from its stack header
// "goroutine 123 [running]:".
func goroutineID(t testing.TB) string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, ok := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	if !ok {
		t.Fatalf("unexpected stack header %q", buf)
	}
	return id
}

// A Pool's calls, one after another, run on the same goroutine: its stack,
// grown by the first, is not grown (copied) again by the next.
func TestPoolReusesItsWorker(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var first string
	p.Run(func() { first = goroutineID(t) })
	for range 100 {
		var id string
		p.Run(func() { id = goroutineID(t) })
		if id != first {
			t.Fatalf("a call ran on goroutine %s, not the idle worker %s", id, first)
		}
	}
	if caller := goroutineID(t); caller == first {
		t.Fatal("the call ran on the caller's goroutine")
	}
}

// With every worker busy, Run does not wait for one: it starts a
// short-lived goroutine, and the pool never holds more than its workers.
func TestPoolBusyWorkersDoNotBlockRun(t *testing.T) {
	p := NewPool(1)
	release := make(chan struct{})
	busy := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(func() { close(busy); <-release })
	}()
	<-busy
	ran := false
	p.Run(func() { ran = true }) // would wait forever for the one worker
	if !ran {
		t.Fatal("Run returned before its call ran")
	}
	close(release)
	<-done
	p.mu.Lock()
	workers := p.workers
	p.mu.Unlock()
	if workers != 1 {
		t.Fatalf("pool of 1 has %d workers", workers)
	}
	p.Close()
	if err := goleak.Find(); err != nil {
		t.Fatalf("after Close: %v", err)
	}
}

// Concurrent callers, more than the workers, each get their own call run
// exactly once (go test -race checks the handoff).
func TestPoolConcurrentCallers(t *testing.T) {
	p := NewPool(3)
	var wg sync.WaitGroup
	var total atomic.Int64
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				n := 0
				p.Run(func() { n += i + 1 })
				if n != i+1 {
					t.Errorf("caller %d: its call ran %d times", i, n/(i+1))
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	p.Close()
	if total.Load() != 32*200 {
		t.Fatalf("%d calls ran, want %d", total.Load(), 32*200)
	}
}

// A panic reaches the caller with f's stack, and the worker goes on.
func TestPoolPanicReachesCaller(t *testing.T) {
	p := NewPool(1)
	defer p.Close()
	func() {
		defer func() {
			s, ok := recover().(string)
			if !ok || !strings.HasPrefix(s, "boom") || !strings.Contains(s, "shallow_test.go") {
				t.Fatalf("recovered %q, want the panic value and f's stack", s)
			}
		}()
		p.Run(func() { panic("boom") })
		t.Fatal("Run returned after a panic")
	}()
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Fatal("the pool did not run a call after a panic")
	}
}

// Close waits for the workers; Run still works after it.
func TestPoolClose(t *testing.T) {
	p := NewPool(4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(func() {}) }()
	}
	wg.Wait()
	p.Close()
	p.Close() // idempotent
	if err := goleak.Find(); err != nil {
		t.Fatalf("workers left after Close: %v", err)
	}
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Fatal("Run after Close did not run its call")
	}
}

// deep uses about 6 KiB of stack, as a grpc-go send or slog line does.
//
//go:noinline
func deep(n int) int {
	var pad [512]byte
	pad[n%512] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%512])
}

// BenchmarkRunDeep compares a short-lived goroutine per call (its stack
// copied as it grows) with the pool's warm worker.
func BenchmarkRunDeep(b *testing.B) {
	b.Run("goroutine", func(b *testing.B) {
		for b.Loop() {
			Run(func() { deep(10) })
		}
	})
	b.Run("pool", func(b *testing.B) {
		p := NewPool(1)
		defer p.Close()
		for b.Loop() {
			p.Run(func() { deep(10) })
		}
	})
}

// A call that ends its goroutine (runtime.Goexit, as t.FailNow does) ends
// the caller's too, on a worker or not, and the pool goes on with one
// worker fewer.
func TestGoexitReachesCaller(t *testing.T) {
	p := NewPool(1)
	defer p.Close()
	for _, run := range []func(func()){Run, p.Run, p.Run} {
		done := make(chan bool)
		go func() {
			finished := false
			defer func() { done <- finished }()
			run(runtime.Goexit)
			finished = true
		}()
		if <-done {
			t.Fatal("Run returned after its call called runtime.Goexit")
		}
	}
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Fatal("the pool did not run a call after a Goexit")
	}
	p.mu.Lock()
	workers := p.workers
	p.mu.Unlock()
	if workers != 1 {
		t.Fatalf("pool has %d workers after its worker's call called Goexit and a new call ran, want 1", workers)
	}
}
