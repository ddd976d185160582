package metricshttp_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/relayproject/relay/internal/metricshttp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServeAndClose(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	s, err := metricshttp.Listen("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "test_things_total 3\n") {
		t.Errorf("/metrics lacks test_things_total 3:\n%s", body)
	}
	s.Close() // goleak checks that its goroutine is gone

	if _, err := metricshttp.Listen("127.0.0.1:-1", reg); err == nil {
		t.Error("Listen on a bad address: no error")
	}
	var none *metricshttp.Server
	if got := none.AddrString(); got != "off" {
		t.Errorf("nil Server AddrString = %q, want off", got)
	}
}
