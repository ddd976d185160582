// Package scheduler decides which host serves a new client: given the hosts
// that have an idle slot for the client's service, Pick returns one. It is
// pure (no I/O, no clock) and is the only place that decision is made.
package scheduler

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
)

// Policy names a scheduling policy.
type Policy string

// The policies. LeastLoaded is the default.
const (
	// LeastLoaded picks the host with the fewest active sessions per unit of
	// weight; ties go round-robin, weighted when the tied hosts' weights
	// differ.
	LeastLoaded Policy = "least-loaded"
	// RoundRobin takes hosts in turn, in host order; with unequal weights,
	// smooth weighted round-robin (a host of weight 3 gets 3 turns in 6,
	// spread out, not in a row).
	RoundRobin Policy = "round-robin"
	// RandomTwoChoices samples two hosts and keeps the less loaded one.
	RandomTwoChoices Policy = "random-two-choices"
	// ClientHash sends a client key (its IP) to the same host while that host
	// has idle slots (rendezvous hashing, weighted).
	ClientHash Policy = "client-hash"
)

// Policies lists every policy, default first.
var Policies = []Policy{LeastLoaded, RoundRobin, RandomTwoChoices, ClientHash}

// ParsePolicy returns the policy named s.
func ParsePolicy(s string) (Policy, error) {
	for _, p := range Policies {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = string(p)
	}
	return "", fmt.Errorf("unknown scheduler %q (want one of %s)", s, strings.Join(names, ", "))
}

// Candidate is one host with at least one idle slot.
type Candidate struct {
	Host   string // unique key of the host
	Active int    // the host's open sessions
	Weight int    // relative capacity; values below 1 count as 1
	// Failing: the host's latest session failed at once because its
	// backend is unreachable. Such a host is passed over while any other
	// candidate is not failing, whatever the policy: its sessions end at
	// once, so it looks idle to least-loaded and would draw most clients.
	Failing bool
}

func (c Candidate) weight() int { return max(c.Weight, 1) }

// lighter reports whether a carries less load per weight than b.
func lighter(a, b Candidate) bool { return a.Active*b.weight() < b.Active*a.weight() }

func sameLoad(a, b Candidate) bool { return a.Active*b.weight() == b.Active*a.weight() }

// Scheduler applies one policy. It keeps a little state (the round-robin
// cursor) and is safe for concurrent use.
type Scheduler struct {
	policy Policy
	mu     sync.Mutex
	last   string // last host picked: the round-robin cursor (also for LeastLoaded ties)
	rng    *rand.Rand
	// credit is smooth weighted round-robin's running score per host; it
	// only holds hosts seen recently (pruned as it grows).
	credit map[string]int
}

// New returns a Scheduler for p. seed makes RandomTwoChoices reproducible.
func New(p Policy, seed uint64) *Scheduler {
	return &Scheduler{policy: p, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Fork returns a new Scheduler with s's policy and state of its own, seeded
// from s: one per group of hosts that take turns (a service), since a
// cursor that another group's picks move is no turn at all.
func (s *Scheduler) Fork() *Scheduler {
	s.mu.Lock()
	seed := s.rng.Uint64()
	s.mu.Unlock()
	return New(s.policy, seed)
}

// Policy returns the scheduler's policy.
func (s *Scheduler) Policy() Policy { return s.policy }

// Pick returns the index in cands of the host that gets the client, or -1
// when cands is empty. cands must be in a stable order (sorted by Host) for
// round-robin to be fair. clientKey is used by ClientHash.
func (s *Scheduler) Pick(cands []Candidate, clientKey string) int {
	if len(cands) == 0 {
		return -1
	}
	healthy := 0
	for _, c := range cands {
		if !c.Failing {
			healthy++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if healthy == 0 || healthy == len(cands) {
		return s.pickLocked(cands, clientKey)
	}
	sub := make([]Candidate, 0, healthy)
	at := make([]int, 0, healthy)
	for i, c := range cands {
		if !c.Failing {
			sub = append(sub, c)
			at = append(at, i)
		}
	}
	return at[s.pickLocked(sub, clientKey)]
}

func (s *Scheduler) pickLocked(cands []Candidate, clientKey string) int {
	if len(cands) == 1 {
		s.last = cands[0].Host // a lone candidate still takes its turn
		return 0
	}
	switch s.policy {
	case RoundRobin:
		return s.roundRobin(cands)
	case RandomTwoChoices:
		i, j := s.rng.IntN(len(cands)), s.rng.IntN(len(cands)-1)
		if j >= i {
			j++
		}
		if lighter(cands[j], cands[i]) {
			return j
		}
		return i
	case ClientHash:
		return rendezvous(cands, clientKey)
	default:
		return s.leastLoaded(cands)
	}
}

func (s *Scheduler) leastLoaded(cands []Candidate) int {
	best := 0
	ties := 1
	for i := 1; i < len(cands); i++ {
		switch {
		case lighter(cands[i], cands[best]):
			best, ties = i, 1
		case sameLoad(cands[i], cands[best]):
			ties++
		}
	}
	if ties == 1 {
		s.last = cands[best].Host
		return best
	}
	// Tied hosts of unequal weights (most often all idle, with clients one
	// at a time) share by weight, or --weight would only count under
	// concurrency: smooth weighted round-robin among them.
	for i := range cands {
		if sameLoad(cands[i], cands[best]) && cands[i].weight() != cands[best].weight() {
			tied := make([]Candidate, 0, ties)
			at := make([]int, 0, ties)
			for j, c := range cands {
				if sameLoad(c, cands[best]) {
					tied = append(tied, c)
					at = append(at, j)
				}
			}
			return at[s.weightedRoundRobin(tied)]
		}
	}
	// Round-robin among the tied hosts: the first one after the last host
	// picked, in host order, wrapping. (A counter modulo the number of ties
	// is not round-robin once that number varies: it can starve a host.)
	first, next := -1, -1
	for i := range cands {
		if !sameLoad(cands[i], cands[best]) {
			continue
		}
		if first < 0 {
			first = i
		}
		if cands[i].Host > s.last && (next < 0 || cands[i].Host < cands[next].Host) {
			next = i
		}
	}
	if next < 0 {
		next = first
		for i := range cands {
			if sameLoad(cands[i], cands[best]) && cands[i].Host < cands[next].Host {
				next = i
			}
		}
	}
	s.last = cands[next].Host
	return next
}

// roundRobin picks the first host after the last one picked, wrapping;
// with unequal weights, it runs smooth weighted round-robin instead.
func (s *Scheduler) roundRobin(cands []Candidate) int {
	for _, c := range cands[1:] {
		if c.weight() != cands[0].weight() {
			return s.weightedRoundRobin(cands)
		}
	}
	pick := 0
	for i, c := range cands {
		if c.Host > s.last {
			pick = i
			break
		}
	}
	s.last = cands[pick].Host
	return pick
}

// weightedRoundRobin is nginx's smooth weighted round-robin: every
// candidate earns its weight, the richest is picked and pays the total.
// Over any run of picks each host's share tracks its weight, and a heavy
// host's turns are interleaved with the others'.
func (s *Scheduler) weightedRoundRobin(cands []Candidate) int {
	if s.credit == nil || len(s.credit) > 4*len(cands)+16 {
		s.credit = make(map[string]int, len(cands)) // forget hosts long gone
	}
	pick, total := 0, 0
	for i, c := range cands {
		w := c.weight()
		total += w
		s.credit[c.Host] += w
		if s.credit[c.Host] > s.credit[cands[pick].Host] {
			pick = i
		}
	}
	s.credit[cands[pick].Host] -= total
	s.last = cands[pick].Host
	return pick
}

// rendezvous implements weighted highest-random-weight hashing: a host keeps
// its clients while the candidate set changes elsewhere.
func rendezvous(cands []Candidate, key string) int {
	best, bestScore := 0, -1.0
	for i, c := range cands {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(c.Host))
		// Map the hash to (0,1), then score = -w/ln(u): weighted rendezvous.
		// FNV's last bytes barely reach its high bits, so hosts named alike
		// ("h1", "h2") would score alike: mix before taking the high bits.
		u := (float64(mix64(h.Sum64())>>11) + 0.5) / (1 << 53)
		score := float64(c.weight()) / -math.Log(u)
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// mix64 is the SplitMix64 finalizer: every input bit reaches every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
