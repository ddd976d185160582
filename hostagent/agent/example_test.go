package agent_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/relayproject/relay/hostagent/agent"
)

// An HTTP server behind NAT: it dials out to the relay, and clients reach
// it on the relay's client port. Swapping the listener is the whole change.
func ExampleListen() {
	// A relay, in process, for the example; in real life it runs elsewhere
	// (`go run ./relayd`) and this is its gRPC address, "relay.example:8000".
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	rl, err := startRelay(grpcLis)
	if err != nil {
		log.Fatal(err)
	}
	defer rl.stop()

	l, err := agent.Listen(context.Background(), agent.Config{Relays: []string{rl.GRPCAddr}, Idle: 2})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from behind the relay, %s", r.URL.Path[1:])
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// Any HTTP client, on the relay's public client port.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + rl.ClientAddr + "/gopher")
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(body))

	srv.Shutdown(context.Background()) // closes l: no new sessions
	<-served
	l.Shutdown(context.Background())
	// Output: hello from behind the relay, gopher
}
