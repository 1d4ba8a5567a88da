// Package versions identifies the versions of a declarative projection: a Definition holds
// the SQL texts that make it up, and its Fingerprint changes when, and only when, one of them
// changes in more than layout or comments (or when the explicit version key changes). It also
// finds schema-qualified names, which a definition built in a shadow schema may not use.
package versions

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
)

// Part is one SQL text of a definition, under the key it comes from (schema, reset,
// handlers."Type", batch ...).
type Part struct {
	Key string `json:"key"`
	SQL string `json:"sql"`
}

// Handler is the SQL a definition runs for one event type.
type Handler struct {
	Topic string `json:"topic"`
	SQL   string `json:"sql"`
}

// Definition is what makes up one version of a declarative projection. Adding a kind of SQL
// text to declarative projections means adding one field here and one line to Parts.
type Definition struct {
	// Name is the projection's name.
	Name string `json:"name"`
	// Version is the projection's explicit version key (empty for none): changing it forces a
	// rebuild of an unchanged definition.
	Version  string    `json:"version,omitempty"`
	Schema   string    `json:"schema,omitempty"`
	Reset    string    `json:"reset,omitempty"`
	Handlers []Handler `json:"handlers"`
	// BatchTopics and Batch are, instead of Handlers, the event types and the SQL of a batch
	// projection (run once per batch over the relation events).
	BatchTopics []string `json:"topics,omitempty"`
	Batch       string   `json:"batch,omitempty"`

	// OnDependency and KeepArchives are the projection's on_dependency and keep_archives
	// policies as the projections file that recorded this version gave them (empty and nil
	// when unknown): what the swap of this version does, whichever replica makes it. They are
	// not part of the fingerprint.
	OnDependency string `json:"on_dependency,omitempty"`
	KeepArchives *int   `json:"keep_archives,omitempty"`
	// Partitions and PartitionBy are how the version's events are partitioned (the
	// projections file's partitions and partition_by): zero and empty when it is not
	// partitioned. They are part of the fingerprint only when Partitions is 2 or more, so an
	// unpartitioned definition keeps the fingerprint it had before partitions existed.
	Partitions  int    `json:"partitions,omitempty"`
	PartitionBy string `json:"partition_by,omitempty"`
}

// Partitioning returns the partitioning of d as the fingerprint and Changes see it: empty when
// d is not partitioned, else "<partitions> by <partition_by>".
func (d Definition) Partitioning() string {
	if d.Partitions < 2 {
		return ""
	}
	return fmt.Sprintf("%d by %s", d.Partitions, d.PartitionBy)
}

// Parts returns the SQL texts of d, each under its key, in a fixed order: the handlers
// sorted by event type, so reordering them is no change.
func (d Definition) Parts() []Part {
	parts := []Part{{Key: "schema", SQL: d.Schema}, {Key: "reset", SQL: d.Reset}}
	hs := append([]Handler(nil), d.Handlers...)
	sort.Slice(hs, func(i, j int) bool { return hs[i].Topic < hs[j].Topic })
	for _, h := range hs {
		parts = append(parts, Part{Key: fmt.Sprintf("handlers.%q", h.Topic), SQL: h.SQL})
	}
	if d.Batch != "" || len(d.BatchTopics) > 0 {
		ts := append([]string(nil), d.BatchTopics...)
		sort.Strings(ts)
		parts = append(parts, Part{Key: "topics", SQL: fmt.Sprintf("%q", ts)}, Part{Key: "batch.sql", SQL: d.Batch})
	}
	return parts
}

// Topics returns the event types d handles.
func (d Definition) Topics() []string {
	if len(d.BatchTopics) > 0 {
		return append([]string(nil), d.BatchTopics...)
	}
	ts := make([]string, len(d.Handlers))
	for i, h := range d.Handlers {
		ts[i] = h.Topic
	}
	return ts
}

// FingerprintLength is the length of a fingerprint in hexadecimal digits.
const FingerprintLength = 16

// Fingerprint identifies d's version: a hash of its explicit version and of each part's key
// and normalized SQL (see Normalize), in hexadecimal, FingerprintLength digits long. The
// projection's name is not part of it.
func (d Definition) Fingerprint() string {
	h := sha256.New()
	write := func(s string) { fmt.Fprintf(h, "%d:%s;", len(s), s) }
	write("version")
	write(d.Version)
	for _, p := range d.Parts() {
		write(p.Key)
		write(Normalize(p.SQL))
	}
	if part := d.Partitioning(); part != "" {
		write("partitions")
		write(part)
	}
	return hex.EncodeToString(h.Sum(nil))[:FingerprintLength]
}

// Changes lists the keys whose SQL differs (beyond layout and comments) between d and
// other, and "version" when the explicit versions differ, for messages that say what
// changed.
func (d Definition) Changes(other Definition) []string {
	var out []string
	if d.Version != other.Version {
		out = append(out, "version")
	}
	if d.Partitioning() != other.Partitioning() {
		out = append(out, "partitions")
	}
	mine, theirs := map[string]string{}, map[string]string{}
	var keys []string
	for _, p := range d.Parts() {
		mine[p.Key] = Normalize(p.SQL)
		keys = append(keys, p.Key)
	}
	for _, p := range other.Parts() {
		theirs[p.Key] = Normalize(p.SQL)
		if _, ok := mine[p.Key]; !ok {
			keys = append(keys, p.Key)
		}
	}
	for _, k := range keys {
		a, inMine := mine[k]
		b, inTheirs := theirs[k]
		if a != b || inMine != inTheirs {
			out = append(out, k)
		}
	}
	return out
}

// Marshal returns d as the JSON stored with its version.
func (d Definition) Marshal() ([]byte, error) { return json.Marshal(d) }

// Unmarshal reads a definition stored by Marshal.
func Unmarshal(b []byte) (Definition, error) {
	var d Definition
	if err := json.Unmarshal(b, &d); err != nil {
		return Definition{}, fmt.Errorf("versions: read a stored definition: %w", err)
	}
	return d, nil
}
