package shallow

import (
	"strings"
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
