// Package profiling serves Go's runtime profiles (net/http/pprof) for the
// --pprof-addr flag of relayd and hostagent. It is off unless asked for:
// profiles reveal internals (goroutine stacks, addresses), so the address
// belongs on loopback, and a non-loopback one is logged as a warning.
package profiling

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// Start serves /debug/pprof/ on addr until stop is called; stop closes the
// listener and waits for the server to return.
func Start(addr string, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		// As metricshttp words it: net's own "listen tcp ADDR" would say
		// listen and the address twice. The hint names the flag, since a
		// port in use is most often this flag's value clashing with another
		// program's (this package serves --pprof-addr only).
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		hint := ""
		if strings.Contains(err.Error(), "address already in use") {
			hint = " (see --pprof-addr)"
		}
		return nil, fmt.Errorf("pprof: listen %s: %w%s", addr, err, hint)
	}
	if ap, ok := lis.Addr().(*net.TCPAddr); ok && !ap.IP.IsLoopback() {
		log.Warn("pprof listens beyond loopback; profiles reveal internals", "pprof_addr", lis.Addr().String())
	}
	// A mux of its own: the pprof package also registers on
	// http.DefaultServeMux, which nothing here serves.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute} // idle keep-alive connections end; profiles may take minutes to write
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server ended", "err", err)
		}
	}()
	log.Info("pprof serving", "pprof_addr", lis.Addr().String())
	return func() {
		srv.Close()
		<-done
	}, nil
}
