'use strict';
// An echo host process for relay, written in Node.js with nothing but
// @grpc/grpc-js and the protocol's .proto file (loaded at run time from
// api/ in this repository): proof that a host needs no Go SDK. Read it with
// docs/writing-a-host.md and api/relay/v1/relay.proto.
//
// It keeps IDLE Attach streams ("slots") open on the relay at RELAY_ADDR,
// opens a replacement as soon as a slot is given a client, echoes every
// byte of each session back in order, honours half-close both ways and
// Close, asks for sequential sessions (a stream whose session ended cleanly
// is offered again rather than replaced; docs/writing-a-host.md), ends a
// session stalled past the relay's idle timeout (Welcome.idle_timeout),
// reconnects with capped, jittered backoff, and follows the
// conformance convention (CONFORMANCE HALFCLOSE / ABORT / BULK first lines)
// so that `go run ./hostagent/conformance -- npm start` can test it.
//
// Environment: RELAY_ADDR (default localhost:8000), IDLE (10), SERVICE
// (default), HOST_ID (the hostname), RELAY_TOKEN (sent as a bearer token
// when set), DRAIN_TIMEOUT_MS (10000: how long open sessions may run after
// SIGTERM/SIGINT), STREAM_PER_SESSION (set to 1: one stream per session, no
// sequential sessions), RELAY_TLS_CA (a PEM file of CAs: TLS to a relay with
// --tls-cert), RELAY_TLS (set to 1: TLS with the system's roots),
// RELAY_TLS_SERVER_NAME (the name to check the relay's certificate against,
// when RELAY_ADDR holds another), RELAY_INSECURE (set to 1: plaintext to a
// relay that is not on loopback, as hostagent --insecure).

const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const RELAY_ADDR = process.env.RELAY_ADDR || 'localhost:8000';
const IDLE = positiveInt('IDLE', 10);
const SERVICE = process.env.SERVICE || 'default';
const HOST_ID = process.env.HOST_ID || os.hostname();
const DRAIN_TIMEOUT_MS = positiveInt('DRAIN_TIMEOUT_MS', 10000);
const SEQUENTIAL = process.env.STREAM_PER_SESSION !== '1';
const AGENT_VERSION = 'relay-node-host/0.1';
const TLS_CA = process.env.RELAY_TLS_CA || '';
const TLS = TLS_CA !== '' || process.env.RELAY_TLS === '1';
const TLS_SERVER_NAME = process.env.RELAY_TLS_SERVER_NAME || '';
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 5000;
const REFUSED_BACKOFF_MS = 30000; // jittered to 15–30 s, as hostagent's
const CLOSE_GRACE_MS = 1000; // for the relay to end a stream we sent Close on
// Statuses of a refusal, not an outage: retrying soon will not help.
const REFUSALS = new Set([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.INVALID_ARGUMENT]);

function positiveInt(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`node-host: ${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

// durationMs converts a google.protobuf.Duration (seconds as a string:
// longs: String below) to milliseconds; an unset one is 0.
function durationMs(d) {
  return d ? Number(d.seconds || 0) * 1000 + Number(d.nanos || 0) / 1e6 : 0;
}

// The protocol, from the same .proto the relay is built from. oneofs: true
// gives every frame a `frame` property naming the field that is set.
const apiDir = path.join(__dirname, '..', '..', 'api');
const packageDef = protoLoader.loadSync('relay/v1/relay.proto', {
  includeDirs: [apiDir], oneofs: true, longs: String, enums: String, defaults: true,
});
const relayv1 = grpc.loadPackageDefinition(packageDef).relay.v1;

// isLoopback: RELAY_ADDR's host is localhost or a loopback address, where
// plaintext reaches no network (hostagent's rule).
function isLoopback(addr) {
  let host = addr.replace(/^dns:\/\/[^/]*\//, '').replace(/^ipv[46]:/, '').replace(/:\d+$/, '');
  host = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) {
    // The URL parser writes an IPv6 address in its shortest form; it
    // refuses a zone (fe80::1%eth0), which is no loopback anyway.
    let short;
    try {
      short = new URL(`http://[${host}]`).hostname;
    } catch {
      return false;
    }
    return short === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(short);
  }
  return false;
}

// Plaintext only to a loopback relay, or when asked for: a token, and every
// client's bytes, would otherwise cross the network in the clear.
if (!TLS && !isLoopback(RELAY_ADDR) && process.env.RELAY_INSECURE !== '1') {
  console.error(`node-host: RELAY_ADDR ${RELAY_ADDR} is not on loopback: set RELAY_TLS_CA=ca.pem (or RELAY_TLS=1 for the system's roots) for a relay with --tls-cert, or RELAY_INSECURE=1 for plaintext on a network you trust`);
  process.exit(2);
}

function channelCredentials() {
  if (!TLS) return grpc.credentials.createInsecure();
  let ca = null; // the system's roots
  if (TLS_CA !== '') {
    try {
      ca = fs.readFileSync(TLS_CA);
    } catch (err) {
      console.error(`node-host: RELAY_TLS_CA: ${err.message}`);
      process.exit(2);
    }
  }
  return grpc.credentials.createSsl(ca);
}

const tlsOptions = TLS && TLS_SERVER_NAME !== ''
  ? { 'grpc.ssl_target_name_override': TLS_SERVER_NAME, 'grpc.default_authority': TLS_SERVER_NAME }
  : {};

const client = new relayv1.HostService(RELAY_ADDR, channelCredentials(), {
  ...tlsOptions,
  // Notice a dead relay; keep grpc-js's own reconnect delay within ours, so
  // a restarted relay gets its slots back within seconds, not minutes.
  'grpc.keepalive_time_ms': 30000,
  'grpc.keepalive_timeout_ms': 10000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': BACKOFF_BASE_MS,
  'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
});

// The conformance convention (docs/writing-a-host.md): a session whose
// first bytes are exactly one of these lines asks for a behaviour once the
// line has been echoed. Any other session is a plain echo.
const HALFCLOSE = 'CONFORMANCE HALFCLOSE\n';
const ABORT = 'CONFORMANCE ABORT\n';
const BULK = 'CONFORMANCE BULK\n';
const COMMANDS = [HALFCLOSE, ABORT, BULK];
const BULK_SIZE = 1 << 20;

// The pool. `waiting` counts slots not yet given a client (attaching or
// idle); `returning` counts sessions on streams that will be offered again
// when they end cleanly (sequential sessions); `slots` holds every open
// stream, for shutdown.
let waiting = 0;
let returning = 0;
let failures = 0;
const FAILURE_LOG_EVERY_MS = 60000;
const lastFailure = { reason: '', at: 0 }; // what backoff said last, and when
let retryTimer = null;
let announced = false;
let stopping = false;
const slots = new Set();

// fill opens slots until IDLE are waiting, unless a backoff is running.
// Sessions whose streams come back count for up to half of them: such a
// stream is offered again sooner, and far cheaper, than a new one opens.
function fill() {
  while (!stopping && retryTimer === null && waiting + Math.min(returning, Math.floor(IDLE / 2)) < IDLE) {
    openSlot();
  }
}

// backoff delays the next attempt after a failure: capped, jittered
// exponential. Slots that fail together (the relay went away) count once.
// A refusal that retrying soon will not cure (a token, a grant, a service
// the relay does not serve, a Hello it cannot take) waits REFUSED_BACKOFF_MS
// instead, as hostagent does: an operator must act.
function backoff(code, details) {
  if (stopping || retryTimer !== null) return;
  failures++;
  let d = Math.min(BACKOFF_BASE_MS * 2 ** Math.min(failures - 1, 16), BACKOFF_MAX_MS);
  let what = 'unavailable';
  if (REFUSALS.has(code)) {
    d = REFUSED_BACKOFF_MS;
    what = 'refused this host';
  }
  const delay = d / 2 + Math.random() * (d / 2);
  announced = false;
  // The first failure, a new status, and then once a minute: an outage of
  // an hour is 60 lines, not 720. (grpc-js's details change at each try:
  // they carry a time.)
  const reason = `${what} ${code}`;
  const now = Date.now();
  if (failures === 1 || reason !== lastFailure.reason || now - lastFailure.at >= FAILURE_LOG_EVERY_MS) {
    const tries = failures > 1 ? `, ${failures} attempts so far` : '';
    // A TLS relay reached in plaintext looks like any outage here (grpc-js
    // says only "Failed to connect"); relayd's own log names the mismatch.
    const hint = !TLS && code === grpc.status.UNAVAILABLE ? ' (if the relay has --tls-cert, set RELAY_TLS_CA=ca.pem)' : '';
    console.error(`node-host: relay ${RELAY_ADDR} ${what} (${grpc.status[code]}: ${details}); retrying in ${Math.round(delay)}ms${tries}${hint}`);
    lastFailure.reason = reason;
    lastFailure.at = now;
  }
  retryTimer = setTimeout(() => { retryTimer = null; fill(); }, delay);
}

// pause stops opening slots for ms, as a Drain frame asks; it is not a
// failure, so the backoff does not grow.
function pause(ms) {
  if (stopping || retryTimer !== null) return;
  announced = false;
  console.error(`node-host: relay ${RELAY_ADDR} asked for no slots for ${Math.round(ms)}ms (drain)`);
  retryTimer = setTimeout(() => { retryTimer = null; fill(); }, ms);
}

// openSlot runs one Attach stream: Hello, Welcome, then one session, or
// with sequential sessions several, one after another.
function openSlot() {
  const metadata = new grpc.Metadata();
  if (process.env.RELAY_TOKEN) metadata.set('authorization', `Bearer ${process.env.RELAY_TOKEN}`);
  const call = client.Attach(metadata);
  // sequential: the relay agreed; returning: this slot's session is
  // counted in `returning`.
  const slot = { call, session: null, sequential: false, returning: false };
  slots.add(slot);
  waiting++;
  let maxData = 16 * 1024; // until Welcome says otherwise
  let idleTimeoutMs = 0;   // Welcome.idle_timeout; 0: the relay has none

  call.write({ hello: { service: SERVICE, hostId: HOST_ID, agentVersion: AGENT_VERSION, labels: { lang: 'node' }, sequentialSessions: SEQUENTIAL } });

  call.on('data', (msg) => {
    switch (msg.frame) {
      case 'welcome': // the slot is idle: it waits for a client
        maxData = msg.welcome.maxDataBytes || maxData;
        idleTimeoutMs = durationMs(msg.welcome.idleTimeout);
        slot.sequential = SEQUENTIAL && msg.welcome.sequentialSessions;
        failures = 0;
        if (!announced && waiting >= IDLE) {
          announced = true;
          console.error(`node-host: attached to ${RELAY_ADDR} with ${IDLE} idle slots`);
        }
        break;
      case 'open': // a client: replace this slot at once, then serve it
        waiting--;
        slot.session = new EchoSession(call, maxData, msg.open.sessionId, idleTimeoutMs);
        if (slot.sequential) {
          slot.returning = true;
          returning++;
        }
        fill();
        break;
      case 'sessionEnd': // the session ended cleanly; the stream can carry another
        if (slot.returning) {
          slot.returning = false;
          returning--;
        }
        if (slot.session) slot.session.end();
        if (!stopping && waiting < IDLE) {
          // Offered again: an empty Hello, answered by Welcome (or Drain).
          slot.session = null;
          waiting++;
          call.write({ hello: {} });
        } else {
          call.end(); // given up: the relay ends the stream with OK
        }
        fill();
        break;
      case 'data':
        if (slot.session) slot.session.onData(msg.data.payload);
        break;
      case 'closeWrite':
        if (slot.session) slot.session.onCloseWrite();
        break;
      case 'close': // the session is aborted; the relay ends the stream
        if (slot.session) slot.session.aborted = true;
        break;
      case 'drain': { // no new slots on this relay for retry_after; not a failure
        slot.drainMs = durationMs(msg.drain.retryAfter) || BACKOFF_BASE_MS;
        break;
      }
      default: // a frame from a newer relay: ignore it
    }
  });

  // 'error' must have a listener or grpc-js throws; 'status' comes in
  // every case, once, and is where the slot ends.
  call.on('error', () => {});
  call.on('status', (st) => {
    slots.delete(slot);
    if (slot.returning) {
      slot.returning = false;
      returning--;
    }
    if (slot.session) {
      slot.session.end();
      if (st.code !== grpc.status.OK && !slot.session.aborted) {
        console.error(`node-host: session aborted: ${grpc.status[st.code]} ${st.details}`);
      }
    } else {
      waiting--;
      // The slot ended before a client came: the relay is draining,
      // restarting or refusing us. Try again after a pause: the one a
      // Drain asked for, or a backoff.
      if (slot.drainMs !== undefined) pause(slot.drainMs);
      else if (!stopping) backoff(st.code, st.details);
    }
    maybeExit();
    fill();
  });
}

// EchoSession echoes one client session on an Attach stream.
class EchoSession {
  constructor(call, maxData, id, idleTimeoutMs) {
    this.call = call;
    this.maxData = maxData;
    this.id = id;
    this.seen = '';          // the first bytes, while they may be a command line
    this.prelude = true;     // still looking for a command line
    this.wroteClosed = false; // we sent CloseWrite: no more Data from us
    this.discard = false;    // CONFORMANCE HALFCLOSE: read and drop the rest
    this.aborted = false;
    this.paused = false;
    this.lastMoved = performance.now(); // when a byte last moved either way
    this.stallTimer = null;
    // The relay ends a session that moves no byte either way for
    // Welcome.idle_timeout, but its Close may never reach us: while our
    // sends wait for flow control we read the relay no more (see send), and
    // the Close waits behind data we do not read. So we end such a session
    // too, a little later, as hostagent does.
    if (idleTimeoutMs > 0) this.watchStalled(idleTimeoutMs + Math.max(1000, idleTimeoutMs / 8));
  }

  // moved notes that bytes (or a CloseWrite) went one way or the other.
  moved() {
    this.lastMoved = performance.now();
  }

  // watchStalled aborts the session with Close{TIMEOUT} once nothing has
  // moved for limit ms: one timer, re-armed for the time left (setTimeout
  // takes at most 2^31-1 ms, about 24 days).
  watchStalled(limit) {
    const check = () => {
      const still = performance.now() - this.lastMoved;
      if (still < limit) {
        this.stallTimer = setTimeout(check, Math.min(limit - still, 2 ** 31 - 1));
        return;
      }
      console.error(`node-host: session ${this.id} moved no byte either way for ${limit}ms, past the relay's idle timeout: aborting it`);
      if (!this.aborted) {
        this.aborted = true;
        this.call.write({ close: { reason: 'CLOSE_REASON_TIMEOUT', detail: `no byte either way for ${limit}ms` } });
      }
      // The relay ends the stream on our Close. If the Close is stuck behind
      // data the relay no longer reads, cancelling the stream releases it.
      this.stallTimer = setTimeout(() => this.call.cancel(), CLOSE_GRACE_MS);
    };
    check();
  }

  // end: the session is over (its stream ended, or SessionEnd came). A
  // timer left running would keep the process alive at shutdown.
  end() {
    clearTimeout(this.stallTimer);
  }

  onData(payload) {
    this.moved();
    if (this.aborted || this.discard) return;
    if (this.prelude) {
      for (let i = 0; i < payload.length; i++) {
        this.seen += String.fromCharCode(payload[i]);
        if (COMMANDS.includes(this.seen)) {
          this.prelude = false;
          this.send(payload.subarray(0, i + 1)); // the line, and nothing after it yet
          this.command(this.seen, payload.subarray(i + 1));
          return;
        }
        if (!COMMANDS.some((c) => c.startsWith(this.seen))) {
          this.prelude = false; // not a command: a plain echo from here on
          break;
        }
      }
    }
    this.send(payload);
  }

  command(cmd, rest) {
    switch (cmd) {
      case HALFCLOSE:
        this.closeWrite();
        this.discard = true;
        break;
      case ABORT:
        this.aborted = true;
        this.call.write({ close: { reason: 'CLOSE_REASON_HOST_ABORT', detail: 'conformance: abort asked by the client' } });
        break;
      case BULK: {
        const bulk = Buffer.alloc(BULK_SIZE);
        for (let i = 0; i < BULK_SIZE; i++) bulk[i] = i % 251;
        this.send(bulk);
        this.send(rest);
        break;
      }
    }
  }

  // onCloseWrite: the client sent FIN. Everything it sent has been queued
  // back in order, so the echo's own FIN goes after it.
  onCloseWrite() {
    this.moved();
    if (!this.aborted) this.closeWrite();
  }

  closeWrite() {
    if (this.wroteClosed) return;
    this.wroteClosed = true;
    this.moved();
    this.call.write({ closeWrite: {} });
  }

  // send queues bytes in Data frames no larger than the relay's limit. When
  // grpc-js's buffer is full, stop reading the relay until it drains: the
  // client then feels HTTP/2 flow control, and only this session slows.
  // Bytes count as moved when grpc-js takes them (its write callback), which
  // waits for flow control once its buffer is full.
  send(buf) {
    if (this.wroteClosed || this.aborted) return;
    for (let off = 0; off < buf.length; off += this.maxData) {
      const ok = this.call.write({ data: { payload: buf.subarray(off, off + this.maxData) } }, () => this.moved());
      if (!ok && !this.paused) {
        this.paused = true;
        this.call.pause();
        this.call.once('drain', () => { this.paused = false; this.call.resume(); });
      }
    }
  }
}

// Shutdown: no new slots, idle ones cancelled, open sessions get
// DRAIN_TIMEOUT_MS to finish; a second signal stops at once.
let drainTimer = null;
function shutdown(signal) {
  if (stopping) {
    process.exit(1);
  }
  stopping = true;
  if (retryTimer !== null) clearTimeout(retryTimer);
  console.error(`node-host: ${signal}: draining`);
  for (const slot of slots) {
    if (!slot.session) slot.call.cancel();
  }
  drainTimer = setTimeout(() => {
    for (const slot of slots) slot.call.cancel();
  }, DRAIN_TIMEOUT_MS);
  maybeExit();
}

function maybeExit() {
  if (!stopping || slots.size > 0) return;
  if (drainTimer !== null) clearTimeout(drainTimer);
  client.close();
  console.error('node-host: stopped');
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

console.error(`node-host: serving echo for service ${SERVICE} via ${RELAY_ADDR}, ${IDLE} idle slots`);
fill();
