package postgres

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func everyone(ids []string, projections []string) []Member {
	ms := make([]Member, len(ids))
	for i, id := range ids {
		ms[i] = Member{ID: id, Projections: projections}
	}
	return ms
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func loads(a map[string]string) map[string]int {
	l := map[string]int{}
	for _, m := range a {
		l[m]++
	}
	return l
}

func moved(a, b map[string]string) int {
	n := 0
	for p, m := range a {
		if b[p] != m {
			n++
		}
	}
	return n
}

func TestAssignBalancesWithinOne(t *testing.T) {
	for _, P := range []int{1, 2, 5, 6, 7, 13, 40} {
		for _, R := range []int{1, 2, 3, 4, 7} {
			ps, ids := names("proj", P), names(fmt.Sprintf("host-%d", P*R), R)
			a := Assign(everyone(ids, ps), ps)
			if len(a) != P {
				t.Fatalf("P=%d R=%d: %d projections assigned, want %d", P, R, len(a), P)
			}
			l := loads(a)
			lo, hi := P/R, (P+R-1)/R
			for _, id := range ids {
				if l[id] < lo || l[id] > hi {
					t.Fatalf("P=%d R=%d: member %s leads %d, want %d..%d (loads %v)", P, R, id, l[id], lo, hi, l)
				}
			}
		}
	}
}

func TestAssignIsDeterministicWhateverTheOrder(t *testing.T) {
	ps, ids := names("proj", 12), names("m", 4)
	want := Assign(everyone(ids, ps), ps)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		r.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		if got := Assign(everyone(ids, ps), ps); moved(want, got) != 0 {
			t.Fatalf("order changed the assignment: %v vs %v", want, got)
		}
	}
}

// A member joining takes its share and few others move; one leaving gives up its share and few
// others move. Minimal movement is P/(R+1) on a join and the leaver's share on a leave; the
// bounded loads add a little to it, measured here over many member sets.
func TestAssignMovesLittleOnJoinAndLeave(t *testing.T) {
	const P = 60
	ps := names("projection", P)
	var joinMoves, joinIdeal, leaveMoves, leaveIdeal int
	for trial := range 50 {
		for _, R := range []int{2, 3, 5} {
			ids := names(fmt.Sprintf("replica-%d", trial), R+1)
			before := Assign(everyone(ids[:R], ps), ps)
			after := Assign(everyone(ids, ps), ps)
			n := moved(before, after)
			share := loads(after)[ids[R]]
			if n < share {
				t.Fatalf("join moved %d, fewer than the newcomer's share %d", n, share)
			}
			if n > 2*share {
				t.Fatalf("R=%d→%d: join moved %d projections, the newcomer's share is %d", R, R+1, n, share)
			}
			joinMoves += n
			joinIdeal += share
			// The leave of a member that is not the last one added.
			leaver := ids[trial%R]
			var rest []string
			for _, id := range ids {
				if id != leaver {
					rest = append(rest, id)
				}
			}
			left := Assign(everyone(rest, ps), ps)
			n = moved(after, left)
			share = loads(after)[leaver]
			if n > 2*share {
				t.Fatalf("R=%d→%d: leave moved %d projections, the leaver's share was %d", R+1, R, n, share)
			}
			leaveMoves += n
			leaveIdeal += share
		}
	}
	t.Logf("moves on join: %d (minimum %d); on leave: %d (minimum %d)", joinMoves, joinIdeal, leaveMoves, leaveIdeal)
	if joinMoves*10 > joinIdeal*13 || leaveMoves*10 > leaveIdeal*13 {
		t.Fatalf("more than 30%% above the minimal movement: join %d/%d, leave %d/%d", joinMoves, joinIdeal, leaveMoves, leaveIdeal)
	}
}

func TestAssignOnlyToMembersThatRunTheProjection(t *testing.T) {
	ms := []Member{
		{ID: "a", Projections: []string{"p1", "p2", "p3"}},
		{ID: "b", Projections: []string{"p1", "p2"}},
		{ID: "c", Projections: []string{"p4"}},
	}
	a := Assign(ms, []string{"p1", "p2", "p3", "p4", "p5"})
	if a["p3"] != "a" || a["p4"] != "c" {
		t.Fatalf("p3 → %q (only a runs it), p4 → %q (only c runs it)", a["p3"], a["p4"])
	}
	if _, ok := a["p5"]; ok {
		t.Fatalf("p5, which no member runs, assigned to %q", a["p5"])
	}
	for _, p := range []string{"p1", "p2"} {
		if a[p] != "a" && a[p] != "b" {
			t.Fatalf("%s → %q, which does not run it", p, a[p])
		}
	}
}

func TestAssignWithNoMembers(t *testing.T) {
	if a := Assign(nil, []string{"p"}); len(a) != 0 {
		t.Fatalf("assigned %v with no members", a)
	}
}

// A version building follows its projection's lease, or its first partition's when the
// projection is partitioned (its partitions are the units of work).
func TestBalanceKeyOfABuildFollowsItsProjectionOrItsFirstPartition(t *testing.T) {
	shares := map[string]string{"pets": "a", "dogs#0": "b", "dogs#1": "c"}
	for name, want := range map[string]string{"pets": "pets", "pets@v2": "pets", "dogs@v2": "dogs#0", "dogs#1": "dogs#1", "cats@v1": "cats"} {
		if got := balanceKey(shares, name); got != want {
			t.Errorf("balanceKey(%q) = %q, want %q", name, got, want)
		}
	}
}
