//go:build linux

// Command chaos is a chaos and soak harness for relayd and hostagent. It
// runs real processes on free loopback ports (an echo backend, -relays
// relayd, one hostagent forward per -agents variant, each agent attached to
// every relay), drives randomized clients through the relays while it
// injects faults, and checks every byte and the way every connection ends.
//
//	go run ./bench/chaos                      # 120 s, 2 relays, all faults
//	go run ./bench/chaos -seed 3 -dur 60s -faults kill,term,relayterm
//	go tool -modfile=tools/go.mod task chaos -- -seed 3 -dur 60s
//	go run ./bench/chaos -faults kill,stop,term,relayterm,stopall -fault-gap 4s -workers 32 \
//	  -mix long=6,full=4,pingpong=2,reset=2,pause=2,stall=1,hc0=1,smallhc=2,noclosewrite=1,slow=1,empty=1
//	go run ./bench/chaos -faults none -mix pingpong=3,full=1 -stallers 150 -stall-for 40s   # backpressure
//	go run ./bench/chaos -faults relayterm,term -relay-drain 30s -agent-drain 30s -mix long=1  # drains finish sessions
//	go run ./bench/chaos -backend custom -faults none -relays 1 -agents plain -mix clireset=1,srvreset2=1
//
// Without -bin it builds relayd, hostagent and relayload from the module it
// is run in (into a temporary directory, removed afterwards). Logs go to
// -out (default: a new directory under the system's temporary directory,
// named at the start of the run): one log per process, events.log (faults,
// a resource monitor, violations, the summary) and results.jsonl (one line
// per client). A run with the same -seed draws the same clients and the
// same faults, though timing decides how they meet.
//
// Faults (-faults, comma-separated, or all, or none; one every -fault-gap on
// average):
//
//	kill       SIGKILL an agent, restart it
//	stop       SIGSTOP an agent for 1-6 s, then SIGCONT
//	stopall    SIGSTOP every agent for 2-12 s
//	term       SIGTERM an agent (drains for -agent-drain), restart it
//	relayterm  SIGTERM a relayd (drains for -relay-drain), restart it
//	relaykill  SIGKILL a relayd, restart it
//
// "all" is every fault but stopall. A killed relayd or hostagent resets its
// connections (the products set SO_LINGER 0 on accepted clients and on
// joined sockets), so no fault excuses a clean end that is not one: a clean EOF after relaykill is
// a violation like any other.
//
// Agent variants (-agents): plain, credits (--slot-credits), conns2
// (--conns 2), maxsess (--max-sessions 8), sps (--stream-per-session).
//
// Client behaviours (-mix name=weight,..., or -behaviour to force one):
// full (send up to 4 MiB, half-close, read the echo to EOF), slow (small
// reads), pause (stop reading for 1-7 s), stall (stop reading for 5-20 s),
// reset (reset mid-stream), empty (connect, close), hc0 (half-close with no
// data), pingpong (lock-step round trips), noclosewrite (read the whole
// echo without half-closing), smallhc (a few KiB), long (a paced 3-15 s
// session). -stallers adds clients that send 4 MiB and stop reading for
// -stall-for. With -backend custom the agents forward to a backend inside
// the harness that sees the client-to-backend direction: srvfirst (the
// backend sends first and half-closes; it must get every client byte and
// the client's FIN), srvreset, srvreset2, srvreset3 (the backend resets;
// the client must see a reset) and clireset (the client resets; the
// backend must see a reset).
//
// A client ends OK (everything verified, a clean end), SELF-ABORT (it reset
// on purpose), ABNORMAL (a reset, a refused dial: what faults may cause) or
// VIOLATION. Violations are: a byte lost, corrupted, duplicated or
// reordered; extra bytes; a clean EOF (FIN) where the other side never sent
// one, such as before the client's own half-close or with bytes missing (a
// reset passed on as a clean end); and a hang, no end within -hang. Linux
// reports a reset once: if the client's writer met it, the reader then reads
// 0 from a socket in state CLOSE, which the harness counts as ABNORMAL, not
// as a clean EOF (it asks TCP_INFO).
//
// After the load the harness resumes and restarts whatever a fault left
// down, waits (at most -settle) for every process to come back to its
// baseline, and checks for leaks: goroutines more than 20 and open files
// more than 10 above the baseline taken after a warm-up, or sessions still
// active on a relay. Then 30 more clients must all end OK. The exit status is
// 1 if there was any violation, leak or such failure (the last line says
// which), 2 for a bad command line.
package main
