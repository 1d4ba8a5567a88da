// The assignment of projections to the live members of a scale-out group: a pure function of
// the member list, so every replica computes the same answer from the same rows.

package postgres

import (
	"hash/fnv"
	"slices"
	"sort"
)

// Member is a replica as the assignment sees it: its id and the projections it runs.
type Member struct {
	ID          string
	Projections []string
}

// runs reports whether m runs projection.
func (m Member) runs(projection string) bool { return slices.Contains(m.Projections, projection) }

// Assign returns the member id each projection is assigned to: a deterministic function of
// the members and projections alone (order does not matter), so replicas that read the same
// membership agree without talking to each other.
//
// It is rendezvous hashing with bounded loads: every (projection, member) pair has a score,
// and the pairs are taken from the highest score down, a projection going to the member of
// the pair unless that member already has its share. The shares are ⌊P/R⌋ each, with the
// P mod R remainder going to the first members to fill up, so when every member runs every
// projection the counts differ by at most one. Because the scores do not depend on the other
// members, a member joining or leaving moves few projections beyond its own share (the
// assignment tests measure it).
//
// A projection goes only to a member that runs it; one that no member runs is left out. When
// members run different sets, a projection whose eligible members are all full goes to the
// best-scored of them, so every projection some member runs has an owner.
func Assign(members []Member, projections []string) map[string]string {
	type pair struct {
		projection, member string
		score              uint64
	}
	projections = slices.Compact(slices.Sorted(slices.Values(projections)))
	var pairs []pair
	ids := map[string]bool{}
	for _, m := range members {
		if ids[m.ID] {
			continue
		}
		ids[m.ID] = true
		for _, p := range projections {
			if m.runs(p) {
				pairs = append(pairs, pair{p, m.ID, score(p, m.ID)})
			}
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		a, b := pairs[i], pairs[j]
		if a.score != b.score {
			return a.score > b.score
		}
		if a.projection != b.projection {
			return a.projection < b.projection
		}
		return a.member < b.member
	})
	out := make(map[string]string, len(projections))
	if len(ids) == 0 {
		return out
	}
	share, extra := len(projections)/len(ids), len(projections)%len(ids)
	load := make(map[string]int, len(ids))
	for _, pr := range pairs {
		if _, done := out[pr.projection]; done {
			continue
		}
		switch n := load[pr.member]; {
		case n < share:
		case n == share && extra > 0:
			extra--
		default:
			continue
		}
		out[pr.projection] = pr.member
		load[pr.member]++
	}
	for _, pr := range pairs { // only when members run different sets: the best-scored eligible member
		if _, done := out[pr.projection]; !done {
			out[pr.projection] = pr.member
		}
	}
	return out
}

// score is the rendezvous weight of projection on member: FNV-1a over both names, finished
// with the SplitMix64 mixer so nearby names spread evenly.
func score(projection, member string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(projection))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(member))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
