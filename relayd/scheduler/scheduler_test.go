package scheduler

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	for _, p := range Policies {
		got, err := ParsePolicy(string(p))
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q, nil", p, got, err, p)
		}
	}
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"unknown", "fastest"},
		{"wrong_case", "Least-Loaded"},
		{"padded", " round-robin"},
		{"underscore", "least_loaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePolicy(tc.in)
			if err == nil {
				t.Fatalf("ParsePolicy(%q) = %q, nil; want an error", tc.in, got)
			}
			if got != "" {
				t.Errorf("ParsePolicy(%q) returned policy %q with its error", tc.in, got)
			}
			// The error names the bad value and every valid one, for the flag's user.
			for _, want := range append([]string{fmt.Sprintf("%q", tc.in)}, policyNames()...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %s", err, want)
				}
			}
		})
	}
}

func policyNames() []string {
	var out []string
	for _, p := range Policies {
		out = append(out, string(p))
	}
	return out
}

func TestPolicyDefaultFirst(t *testing.T) {
	t.Parallel()
	if Policies[0] != LeastLoaded {
		t.Errorf("Policies[0] = %q, want the default %q", Policies[0], LeastLoaded)
	}
	if got := New(ClientHash, 1).Policy(); got != ClientHash {
		t.Errorf("Policy() = %q, want %q", got, ClientHash)
	}
}

// TestPickEdgeCases holds for every policy.
func TestPickEdgeCases(t *testing.T) {
	t.Parallel()
	for _, p := range Policies {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			s := New(p, 7)
			if got := s.Pick(nil, "10.0.0.1"); got != -1 {
				t.Errorf("Pick(nil) = %d, want -1", got)
			}
			if got := s.Pick([]Candidate{}, "10.0.0.1"); got != -1 {
				t.Errorf("Pick(empty) = %d, want -1", got)
			}
			one := []Candidate{{Host: "a", Active: 100, Weight: 0}}
			for range 10 {
				if got := s.Pick(one, "10.0.0.1"); got != 0 {
					t.Fatalf("Pick(one) = %d, want 0", got)
				}
			}
			// Every pick is a valid index, whatever the input.
			cands := hosts(5)
			for i := range 200 {
				cands[i%5].Active = i % 7
				cands[(i+2)%5].Weight = i%4 - 1 // zero and negative weights count as 1
				if got := s.Pick(cands, fmt.Sprint(i)); got < 0 || got >= len(cands) {
					t.Fatalf("Pick = %d, out of range", got)
				}
			}
		})
	}
}

func hosts(n int, weights ...int) []Candidate {
	c := make([]Candidate, n)
	for i := range c {
		c[i] = Candidate{Host: fmt.Sprintf("h%02d", i), Weight: 1}
		if i < len(weights) {
			c[i].Weight = weights[i]
		}
	}
	return c
}

func TestLeastLoadedPicksLightestPerWeight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cands []Candidate
		want  int
	}{
		{"fewest_active", []Candidate{{Host: "a", Active: 3, Weight: 1}, {Host: "b", Active: 1, Weight: 1}, {Host: "c", Active: 2, Weight: 1}}, 1},
		{"first_is_lightest", []Candidate{{Host: "a", Active: 0, Weight: 1}, {Host: "b", Active: 1, Weight: 1}, {Host: "c", Active: 2, Weight: 1}}, 0},
		{"last_is_lightest", []Candidate{{Host: "a", Active: 5, Weight: 1}, {Host: "b", Active: 4, Weight: 1}, {Host: "c", Active: 3, Weight: 1}}, 2},
		{"weight_divides_load", []Candidate{{Host: "a", Active: 2, Weight: 1}, {Host: "b", Active: 5, Weight: 3}}, 1},     // 2/1 > 5/3
		{"weight_not_enough", []Candidate{{Host: "a", Active: 2, Weight: 1}, {Host: "b", Active: 7, Weight: 3}}, 0},       // 2/1 < 7/3
		{"zero_weight_is_one", []Candidate{{Host: "a", Active: 2, Weight: 0}, {Host: "b", Active: 3, Weight: 1}}, 0},      // 2/1 < 3/1
		{"negative_weight_is_one", []Candidate{{Host: "a", Active: 4, Weight: -5}, {Host: "b", Active: 3, Weight: 1}}, 1}, // 4/1 > 3/1
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(LeastLoaded, 1)
			for range 5 { // no tie, so no rotation: always the same answer
				if got := s.Pick(tc.cands, ""); got != tc.want {
					t.Fatalf("Pick = %d (%s), want %d (%s)", got, tc.cands[got].Host, tc.want, tc.cands[tc.want].Host)
				}
			}
		})
	}
}

func TestLeastLoadedTiesRoundRobin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cands []Candidate
		tied  []int // the indexes that tie for lightest
	}{
		{"all_idle", hosts(3), []int{0, 1, 2}},
		{"two_of_four", []Candidate{{Host: "a", Active: 2, Weight: 1}, {Host: "b", Active: 1, Weight: 1}, {Host: "c", Active: 3, Weight: 1}, {Host: "d", Active: 1, Weight: 1}}, []int{1, 3}},
		{"tie_not_first", []Candidate{{Host: "a", Active: 9, Weight: 1}, {Host: "b", Active: 0, Weight: 1}, {Host: "c", Active: 0, Weight: 1}, {Host: "d", Active: 0, Weight: 1}, {Host: "e", Active: 0, Weight: 1}}, []int{1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(LeastLoaded, 1)
			const rounds = 300
			counts := map[int]int{}
			var seq []int
			for range rounds * len(tc.tied) {
				i := s.Pick(tc.cands, "")
				counts[i]++
				seq = append(seq, i)
			}
			for _, i := range tc.tied {
				if counts[i] != rounds {
					t.Errorf("host %s picked %d times, want exactly %d (counts %v)", tc.cands[i].Host, counts[i], rounds, counts)
				}
			}
			// In turn: every window of len(tied) picks has each tied host once.
			for w := 0; w+len(tc.tied) <= len(seq); w += len(tc.tied) {
				win := slices.Clone(seq[w : w+len(tc.tied)])
				slices.Sort(win)
				if !slices.Equal(win, tc.tied) {
					t.Fatalf("picks %d..%d = %v, want each of %v once", w, w+len(tc.tied), seq[w:w+len(tc.tied)], tc.tied)
				}
			}
		})
	}
}

// TestLeastLoadedWeightedTies: hosts tied on load per weight, with unequal
// weights, share the picks by weight, interleaved (smooth weighted
// round-robin), not in equal turns.
func TestLeastLoadedWeightedTies(t *testing.T) {
	t.Parallel()
	cands := []Candidate{{Host: "a", Active: 2, Weight: 2}, {Host: "b", Active: 1, Weight: 1}, {Host: "c", Active: 3, Weight: 3}}
	s := New(LeastLoaded, 1)
	counts := make([]int, len(cands))
	for n := range 600 {
		i := s.Pick(cands, "")
		counts[i]++
		if n == 5 && (counts[0] != 2 || counts[1] != 1 || counts[2] != 3) {
			t.Fatalf("first 6 picks %v, want 2, 1, 3: each weight's turns within one round", counts)
		}
	}
	if counts[0] != 200 || counts[1] != 100 || counts[2] != 300 {
		t.Errorf("600 picks: %v, want 200, 100, 300 (by weight)", counts)
	}
}

// simulate runs picks over cands; each pick opens a session on the host
// (Active++), and once live sessions exceed keep, the oldest one ends. Every
// session thus lasts the same number of picks, so a fair policy gives each
// host a share of picks proportional to its weight.
func simulate(tb testing.TB, s *Scheduler, cands []Candidate, picks, keep int, key func(int) string) []int {
	tb.Helper()
	counts := make([]int, len(cands))
	var live []int // host index of each open session, oldest first
	for n := range picks {
		i := s.Pick(cands, key(n))
		if i < 0 || i >= len(cands) {
			tb.Fatalf("pick %d: index %d out of range", n, i)
		}
		counts[i]++
		cands[i].Active++
		live = append(live, i)
		for len(live) > keep {
			cands[live[0]].Active--
			live = live[1:]
		}
	}
	return counts
}

func noKey(int) string { return "" }

func checkShares(tb testing.TB, cands []Candidate, counts []int, tol float64) {
	tb.Helper()
	total, wsum := 0, 0
	for i, c := range cands {
		total += counts[i]
		wsum += max(c.Weight, 1)
	}
	for i, c := range cands {
		want := float64(max(c.Weight, 1)) / float64(wsum)
		got := float64(counts[i]) / float64(total)
		if math.Abs(got-want) > tol {
			tb.Errorf("host %s (weight %d): share %.4f of %d picks, want %.4f ± %.2f (counts %v)", c.Host, c.Weight, got, total, want, tol, counts)
		}
	}
}

func TestLeastLoadedWeightedFairness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		weights []int
		keep    int // sessions alive at once; small values quantize shares
	}{
		{"1_2_3_keep_60", []int{1, 2, 3}, 60},
		{"1_2_3_keep_61", []int{1, 2, 3}, 61}, // not a multiple of the weight sum
		{"1_2_3_keep_300", []int{1, 2, 3}, 300},
		{"3_2_1_keep_100", []int{3, 2, 1}, 100},
		{"5_1_keep_90", []int{5, 1}, 90},
		// Clients one at a time, each gone before the next: every pick is
		// a tie of idle hosts, shared by weight.
		{"1_3_keep_0", []int{1, 3}, 0},
		{"1_2_3_keep_0", []int{1, 2, 3}, 0},
		{"1_1_1_1_keep_1", []int{1, 1, 1, 1}, 1},
		{"1_1_1_1_keep_5", []int{1, 1, 1, 1}, 5},
		{"equal_7_keep_3", []int{1, 1, 1, 1, 1, 1, 1}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cands := hosts(len(tc.weights), tc.weights...)
			counts := simulate(t, New(LeastLoaded, 1), cands, 6000, tc.keep, noKey)
			checkShares(t, cands, counts, 0.02)
		})
	}
}

// TestLeastLoadedEqualHostsNeverStarve: with equal weights, few sessions and
// a tie set that changes size from pick to pick, every host still gets its
// turn (a host left out of the rotation would get no client at all).
func TestLeastLoadedEqualHostsNeverStarve(t *testing.T) {
	t.Parallel()
	for keep := range 12 {
		cands := hosts(4)
		counts := simulate(t, New(LeastLoaded, 1), cands, 4000, keep, noKey)
		for i, n := range counts {
			if n < 900 || n > 1100 {
				t.Errorf("keep %d: host %s got %d of 4000 picks, want about 1000 (counts %v)", keep, cands[i].Host, n, counts)
			}
		}
	}
}

// TestLeastLoadedIrregularRelease ends sessions in bursts and in a
// deterministic but irregular order; the weighted shares still hold.
func TestLeastLoadedIrregularRelease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		release func(n int, live []int) []int // indexes in live of the sessions that end after pick n
	}{
		{"bursts_of_20", func(n int, live []int) []int {
			if len(live) < 120 {
				return nil
			}
			return []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
		}},
		{"pseudo_random_victim", func(n int, live []int) []int {
			if len(live) <= 90 {
				return nil
			}
			return []int{(n * 7919) % len(live)}
		}},
		{"newest_first", func(n int, live []int) []int {
			// Every third pick ends the newest session at once (a health
			// check), the others end oldest first.
			if n%3 == 0 {
				return []int{len(live) - 1}
			}
			if len(live) > 80 {
				return []int{0}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cands := hosts(3, 1, 2, 3)
			s := New(LeastLoaded, 1)
			counts := make([]int, len(cands))
			var live []int
			for n := range 12000 {
				i := s.Pick(cands, "")
				counts[i]++
				cands[i].Active++
				live = append(live, i)
				gone := tc.release(n, live)
				for j := len(gone) - 1; j >= 0; j-- { // gone is ascending
					cands[live[gone[j]]].Active--
					live = slices.Delete(live, gone[j], gone[j]+1)
				}
			}
			checkShares(t, cands, counts, 0.03)
		})
	}
}

func TestRoundRobinCyclesInHostOrder(t *testing.T) {
	t.Parallel()
	s := New(RoundRobin, 1)
	cands := hosts(4)
	// Load does not matter to round-robin (weight does: see
	// TestWeightedRoundRobinInterleaves).
	cands[0].Active = 50
	var got []int
	for range 12 {
		got = append(got, s.Pick(cands, ""))
	}
	want := []int{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}
	if !slices.Equal(got, want) {
		t.Fatalf("picks = %v, want %v", got, want)
	}
}

func TestRoundRobinCandidateSetChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		steps [][]string // candidate hosts at each pick, sorted
		want  []string   // host picked at each step
	}{
		{
			name:  "host_leaves",
			steps: [][]string{{"a", "b", "c"}, {"a", "c"}, {"a", "c"}, {"a", "b", "c"}},
			want:  []string{"a", "c", "a", "b"},
		},
		{
			name:  "host_joins_after_cursor",
			steps: [][]string{{"a", "c"}, {"a", "b", "c"}, {"a", "b", "c"}},
			want:  []string{"a", "b", "c"},
		},
		{
			name:  "last_host_gone_wraps",
			steps: [][]string{{"a", "b", "c"}, {"a", "b", "c"}, {"a", "b", "c"}, {"a", "b"}},
			want:  []string{"a", "b", "c", "a"},
		},
		{
			// A pick with one candidate is still a turn: the host that
			// served it does not serve the next client too.
			name:  "single_candidate_is_a_turn",
			steps: [][]string{{"a", "b", "c"}, {"b"}, {"a", "b", "c"}, {"a", "b", "c"}},
			want:  []string{"a", "b", "c", "a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(RoundRobin, 1)
			for i, names := range tc.steps {
				cands := make([]Candidate, len(names))
				for j, n := range names {
					cands[j] = Candidate{Host: n, Weight: 1}
				}
				if got := cands[s.Pick(cands, "")].Host; got != tc.want[i] {
					t.Fatalf("step %d over %v: picked %s, want %s", i, names, got, tc.want[i])
				}
			}
		})
	}
}

func TestRoundRobinEvenOverMany(t *testing.T) {
	t.Parallel()
	cands := hosts(7)
	counts := simulate(t, New(RoundRobin, 1), cands, 7000, 10, noKey)
	for i, n := range counts {
		if n != 1000 {
			t.Errorf("host %s picked %d times, want 1000", cands[i].Host, n)
		}
	}
}

// With two candidates, random-two-choices samples both every time, so it
// must always pick the lighter one.
func TestRandomTwoChoicesNeverPicksHeavierOfTwo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cands []Candidate
		want  int
	}{
		{"first_lighter", []Candidate{{Host: "a", Active: 1, Weight: 1}, {Host: "b", Active: 2, Weight: 1}}, 0},
		{"second_lighter", []Candidate{{Host: "a", Active: 5, Weight: 1}, {Host: "b", Active: 4, Weight: 1}}, 1},
		{"weighted", []Candidate{{Host: "a", Active: 2, Weight: 1}, {Host: "b", Active: 5, Weight: 3}}, 1},
		{"weight_not_enough", []Candidate{{Host: "a", Active: 2, Weight: 1}, {Host: "b", Active: 7, Weight: 3}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(50) {
				s := New(RandomTwoChoices, seed)
				for range 20 {
					if got := s.Pick(tc.cands, ""); got != tc.want {
						t.Fatalf("seed %d: picked %s, want the lighter %s", seed, tc.cands[got].Host, tc.cands[tc.want].Host)
					}
				}
			}
		})
	}
}

// TestRandomTwoChoicesNeverPicksHeaviest: with three hosts, any two sampled
// include a host lighter than the heaviest, so the heaviest never wins.
func TestRandomTwoChoicesNeverPicksHeaviest(t *testing.T) {
	t.Parallel()
	cands := []Candidate{{Host: "a", Active: 3, Weight: 1}, {Host: "b", Active: 9, Weight: 1}, {Host: "c", Active: 4, Weight: 1}}
	s := New(RandomTwoChoices, 3)
	counts := make([]int, 3)
	for range 3000 {
		counts[s.Pick(cands, "")]++
	}
	if counts[1] != 0 {
		t.Errorf("heaviest host picked %d times, want 0 (counts %v)", counts[1], counts)
	}
	// a wins when sampled (2 of 3 pairs), c only against b (1 of 3 pairs).
	if a := float64(counts[0]) / 3000; math.Abs(a-2.0/3) > 0.05 {
		t.Errorf("lightest host share %.3f, want about 2/3 (counts %v)", a, counts)
	}
}

// TestRandomTwoChoicesKeepsLoadBalanced: many hosts, sessions of random
// length; the spread between the most and least loaded host stays small
// (pure random picking spreads far wider), and every host is used.
func TestRandomTwoChoicesKeepsLoadBalanced(t *testing.T) {
	t.Parallel()
	const n, keep = 10, 200
	cands := hosts(n)
	counts := simulate(t, New(RandomTwoChoices, 42), cands, 20000, keep, noKey)
	lo, hi := cands[0].Active, cands[0].Active
	for _, c := range cands {
		lo, hi = min(lo, c.Active), max(hi, c.Active)
	}
	if hi-lo > 6 {
		t.Errorf("final load spread %d..%d, want within 6 (mean %d)", lo, hi, keep/n)
	}
	checkShares(t, cands, counts, 0.01)
}

func TestRandomTwoChoicesSeedReproducible(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) []int {
		s := New(RandomTwoChoices, seed)
		var out []int
		for range 100 {
			out = append(out, s.Pick(hosts(8), ""))
		}
		return out
	}
	a, b, c := run(5), run(5), run(6)
	if !slices.Equal(a, b) {
		t.Error("same seed gave different picks")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same 100 picks")
	}
}

func TestClientHashSticky(t *testing.T) {
	t.Parallel()
	s := New(ClientHash, 1)
	cands := hosts(6)
	for k := range 500 {
		key := fmt.Sprintf("192.0.2.%d", k)
		first := s.Pick(cands, key)
		for range 3 {
			// Load changes do not move a client.
			cands[k%6].Active += 3
			if got := s.Pick(cands, key); got != first {
				t.Fatalf("key %s moved from %s to %s with the same candidates", key, cands[first].Host, cands[got].Host)
			}
		}
	}
}

// TestClientHashRendezvous: removing a host other than a key's moves no key;
// removing the key's own host moves only its keys; adding a host takes keys
// only to itself.
func TestClientHashRendezvous(t *testing.T) {
	t.Parallel()
	s := New(ClientHash, 1)
	all := hosts(5, 1, 2, 3, 1, 2)
	owner := func(cands []Candidate, key string) string { return cands[s.Pick(cands, key)].Host }
	for removed := range all {
		rest := slices.Delete(slices.Clone(all), removed, removed+1)
		moved := 0
		for k := range 2000 {
			key := fmt.Sprintf("2001:db8::%x", k)
			before, after := owner(all, key), owner(rest, key)
			switch {
			case before == all[removed].Host:
				moved++
			case before != after:
				t.Fatalf("removing %s moved key %s from %s to %s", all[removed].Host, key, before, after)
			}
			// Adding the host back only takes keys to itself.
			if again := owner(all, key); again != before && again != all[removed].Host {
				t.Fatalf("adding %s moved key %s from %s to %s", all[removed].Host, key, after, again)
			}
		}
		if moved == 0 {
			t.Errorf("host %s owned none of 2000 keys", all[removed].Host)
		}
	}
}

// TestClientHashWeightedSpread: over many keys, each host's share follows
// its weight.
func TestClientHashWeightedSpread(t *testing.T) {
	t.Parallel()
	cands := hosts(3, 1, 2, 3)
	counts := make([]int, 3)
	s := New(ClientHash, 1)
	for k := range 12000 {
		counts[s.Pick(cands, fmt.Sprintf("198.51.%d.%d", k/256, k%256))]++
	}
	checkShares(t, cands, counts, 0.02)
}

func TestClientHashOrderIndependent(t *testing.T) {
	t.Parallel()
	s := New(ClientHash, 1)
	cands := hosts(5)
	rev := slices.Clone(cands)
	slices.Reverse(rev)
	for k := range 300 {
		key := fmt.Sprint(k)
		if a, b := cands[s.Pick(cands, key)].Host, rev[s.Pick(rev, key)].Host; a != b {
			t.Fatalf("key %s: %s in host order, %s in reverse order", key, a, b)
		}
	}
}

// TestConcurrentPicks runs under -race: Scheduler is safe for concurrent use,
// and concurrent ties still share out evenly.
func TestConcurrentPicks(t *testing.T) {
	t.Parallel()
	for _, p := range Policies {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			s := New(p, 9)
			cands := hosts(4)
			var mu sync.Mutex
			counts := make([]int, len(cands))
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					local := make([]int, len(cands))
					for i := range 1000 {
						local[s.Pick(cands, fmt.Sprint(g, i))]++
					}
					mu.Lock()
					for i, n := range local {
						counts[i] += n
					}
					mu.Unlock()
				})
			}
			wg.Wait()
			if p == LeastLoaded || p == RoundRobin {
				for i, n := range counts {
					if n != 1000 {
						t.Errorf("host %s picked %d times, want 1000 (counts %v)", cands[i].Host, n, counts)
					}
				}
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	for _, p := range Policies {
		b.Run(string(p), func(b *testing.B) {
			s := New(p, 1)
			cands := hosts(16)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				cands[s.Pick(cands, "203.0.113.7")].Active++
				cands[i%16].Active = max(cands[i%16].Active-1, 0)
			}
		})
	}
}

// TestClientHashSpreadsAlikeNames: host keys that differ only in their last
// character (as generated ids do) still share the clients evenly.
func TestClientHashSpreadsAlikeNames(t *testing.T) {
	t.Parallel()
	for _, names := range [][]string{
		{"agent-1", "agent-2", "agent-3", "agent-4", "agent-5"},
		{"h00", "h01", "h02", "h03", "h04"},
		{"10.0.0.1:7", "10.0.0.1:8", "10.0.0.1:9"},
	} {
		cands := make([]Candidate, len(names))
		for i, n := range names {
			cands[i] = Candidate{Host: n, Weight: 1}
		}
		counts := make([]int, len(cands))
		s := New(ClientHash, 1)
		for k := range 10000 {
			counts[s.Pick(cands, fmt.Sprintf("2001:db8::%x", k))]++
		}
		checkShares(t, cands, counts, 0.02)
	}
}

// TestWeightedFairnessEveryPolicy: hosts of weights 1:2:3 get about 1/6,
// 2/6 and 3/6 of 1,000 assignments under every policy (sessions come and
// go; client-hash sees a different client address each time).
func TestWeightedFairnessEveryPolicy(t *testing.T) {
	t.Parallel()
	for _, p := range Policies {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			cands := hosts(3, 1, 2, 3)
			key := func(n int) string { return fmt.Sprintf("203.0.%d.%d", n/256, n%256) }
			tol := 0.03
			if p == ClientHash {
				tol = 0.05 // hashing 1,000 addresses: sampling noise
			}
			counts := simulate(t, New(p, 7), cands, 1000, 30, key)
			checkShares(t, cands, counts, tol)
		})
	}
}

// TestWeightedRoundRobinInterleaves: a heavy host's turns are spread out,
// and the pattern repeats exactly every sum-of-weights picks.
func TestWeightedRoundRobinInterleaves(t *testing.T) {
	t.Parallel()
	s := New(RoundRobin, 1)
	cands := hosts(3, 5, 1, 1)
	var got []string
	for range 14 {
		got = append(got, cands[s.Pick(cands, "")].Host)
	}
	// nginx's sequence for weights 5,1,1: a a b a c a a, repeated.
	want := "h00 h00 h01 h00 h02 h00 h00 h00 h00 h01 h00 h02 h00 h00"
	if strings.Join(got, " ") != want {
		t.Errorf("picks %s, want %s", strings.Join(got, " "), want)
	}
}

// TestForkOwnState: a fork keeps its parent's policy and a cursor of its
// own: the parent's picks do not move it.
func TestForkOwnState(t *testing.T) {
	s := New(RoundRobin, 1)
	f := s.Fork()
	if f.Policy() != RoundRobin {
		t.Fatalf("fork's policy %q, want %q", f.Policy(), RoundRobin)
	}
	cands := []Candidate{{Host: "a"}, {Host: "b"}}
	if got := s.Pick(cands, ""); got != 0 {
		t.Fatalf("parent's first pick %d, want 0", got)
	}
	if got := f.Pick(cands, ""); got != 0 {
		t.Errorf("fork's first pick %d, want 0: the parent's pick moved its cursor", got)
	}
}
