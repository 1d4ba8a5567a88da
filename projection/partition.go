// Partitioned projections: a projection's events split by a key into partitions, each run by a
// worker of its own (its own tracking row, lease, transactions and subscription), and the
// projection's position as the lowest of its partitions'.

package projection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/projector-dev/projector/tracking"
)

// MaxPartitions is the largest ProjectionOptions.Partitions.
const MaxPartitions = 256

// PartitionSeparator separates a projection's name from its partition's number in the name of
// the partition (PartitionName); projection names may not contain it.
const PartitionSeparator = "#"

// PartitionByStream is the ProjectionOptions.PartitionBy that keys events by their stream (the
// default).
const PartitionByStream = "stream"

// partitionByData is the prefix of a PartitionBy that keys events by a field of their JSON data.
const partitionByData = "data."

// PartitionName is the name of partition i of projection: "name#i", counting from 0. It names
// the partition's tracking row, its lease and its status entry.
func PartitionName(projection string, i int) string {
	return projection + PartitionSeparator + strconv.Itoa(i)
}

// SplitPartitionName returns the projection and partition number of a name made by
// PartitionName; ok is false for any other name.
func SplitPartitionName(name string) (projection string, i int, ok bool) {
	base, num, found := strings.Cut(name, PartitionSeparator)
	if !found || base == "" {
		return "", 0, false
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || strconv.Itoa(i) != num {
		return "", 0, false
	}
	return base, i, true
}

// Partition is the partition (0 to partitions-1) of the events of key: FNV-1a (32 bits) of the
// key's bytes, modulo partitions. It is stable across processes and versions.
func Partition(key string, partitions int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(partitions))
}

// partitionKey returns the function that gives an event's partition key under by (validated
// by ProjectionOptions.validate): the stream's name, or the value of a field of the event's
// JSON data. A string field's key is the string; any other JSON value's key is its compact
// JSON text. An event whose data is not a JSON object, or lacks the field (or has it null),
// has the empty key: such events go, in order, to the partition of the empty key.
func partitionKey(by string) func(e Event) string {
	if by == "" || by == PartitionByStream {
		return func(e Event) string { return e.Stream }
	}
	path := strings.Split(strings.TrimPrefix(by, partitionByData), ".")
	return func(e Event) string { return dataKey(e.Data, path) }
}

// dataKey is the value at path in the JSON object data, as partitionKey describes it.
func dataKey(data []byte, path []string) string {
	var v any = json.RawMessage(data)
	for _, field := range path {
		raw, ok := v.(json.RawMessage)
		if !ok {
			return ""
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return ""
		}
		next, ok := obj[field]
		if !ok {
			return ""
		}
		v = next
	}
	raw := v.(json.RawMessage)
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil || buf.String() == "null" {
		return ""
	}
	return buf.String()
}

// CheckPartitionBy returns an error naming what is wrong with by as a
// ProjectionOptions.PartitionBy: it must be empty, PartitionByStream, or "data." followed by a
// dot-separated path of non-empty field names.
func CheckPartitionBy(by string) error {
	if by == "" || by == PartitionByStream {
		return nil
	}
	if !strings.HasPrefix(by, partitionByData) {
		return fmt.Errorf("PartitionBy %q: want %q or %q followed by a field path such as data.tenant", by, PartitionByStream, partitionByData)
	}
	for _, f := range strings.Split(strings.TrimPrefix(by, partitionByData), ".") {
		if f == "" {
			return fmt.Errorf("PartitionBy %q: a field name of the path is empty", by)
		}
	}
	return nil
}

// partition is what the worker of one partition knows of it.
type partition struct {
	index, count int
	key          func(e Event) string
}

// owns reports whether e belongs to this partition.
func (p *partition) owns(e Event) bool { return Partition(p.key(e), p.count) == p.index }

// lowest is the state of the partition that has got least far: every position it has done,
// every partition has done (State.Done(P) holds exactly for P <= Reached()). ok is false
// while a partition's state is not known.
func lowest(states []tracking.State, known []bool) (low tracking.State, ok bool) {
	for i, s := range states {
		if !known[i] {
			return tracking.State{}, false
		}
		if i == 0 || s.Reached() < low.Reached() {
			low = s
		}
	}
	return low, len(states) > 0
}

// partitionStateOrder ranks the run states of partitions led here, the one to show first:
// a stopped partition makes the projection show stopped, and so on.
var partitionStateOrder = []RunState{StateStopped, StateRetrying, StateStarting, StateCatchingUp, StateLive}

// AggregatePartitions returns the status of partitioned projection name from its partitions'
// entries (parts, in partition order), kept in Partitions:
//   - Position and Tracking are those of the partition that has got least far (each
//     partition's Tracking as the entry knows it), so every position at or below Position is
//     done in every partition: what Wait and the wait API answer by.
//   - Leader is true when this process leads at least one partition; State is the first of
//     stopped, retrying, starting, catching_up and live that a partition led here is in,
//     standby when it leads none (done when every partition's runner has ended).
//   - CaughtUp is true when it leads at least one partition and every one it leads is caught
//     up; OldestPending is the oldest of the partitions', LastProgress the latest.
//   - Failed and Error are those of the first partition that has them (Error names it).
func AggregatePartitions(name string, parts []Status) Status {
	agg := Status{Name: name, State: StateStandby, Partitions: parts}
	states, known := make([]tracking.State, len(parts)), make([]bool, len(parts))
	led := map[RunState]bool{}
	done, caughtUp := true, true
	for i, p := range parts {
		states[i], known[i] = p.Tracking, true
		if p.State != StateDone {
			done = false
		}
		if p.Leader {
			agg.Leader = true
			led[p.State] = true
			caughtUp = caughtUp && p.CaughtUp
		}
		if !p.OldestPending.IsZero() && (agg.OldestPending.IsZero() || p.OldestPending.Before(agg.OldestPending)) {
			agg.OldestPending = p.OldestPending
		}
		if p.LastProgress.After(agg.LastProgress) {
			agg.LastProgress = p.LastProgress
		}
		if agg.Failed == nil && p.Failed != nil {
			agg.Failed = p.Failed
		}
		agg.ParkedStreams += p.ParkedStreams
		if agg.Error == "" && p.Error != "" {
			agg.Error = p.Name + ": " + p.Error
		}
	}
	agg.Tracking, _ = lowest(states, known)
	agg.Position = agg.Tracking.Reached()
	agg.CaughtUp = agg.Leader && caughtUp
	for _, s := range partitionStateOrder {
		if led[s] {
			agg.State = s
			break
		}
	}
	if done {
		agg.State = StateDone
	}
	return agg
}
