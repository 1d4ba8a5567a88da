// The advisory lock key of a projection's leadership: the one computation the Elector and
// Store.Rewind share, so an offline rewind and a leader always contend for the same lock.

package postgres

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

// LockKey is the advisory lock key of projection in namespace: the FNV-1a 64-bit hash of
// "projector\x00leader\x00" + namespace + "\x00" + projection, read as a signed 64-bit integer
// (the single-bigint form of pg_advisory_lock, so it never meets the two-integer keys Migrate
// locks). The key is stable across releases and platforms; pg_locks shows it as classid (the
// high 32 bits) and objid (the low 32 bits) with objsubid 1.
func LockKey(namespace, projection string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("projector\x00leader\x00"))
	_, _ = h.Write([]byte(namespace))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(projection))
	return int64(h.Sum64())
}

// queryRower is a connection or transaction that reads one row.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// leaderKey returns the advisory lock key of projectionName's leadership in namespace, and the
// namespace: an empty namespace is the current schema of q's connection (the schema
// Projector's tables live in). Every Elector and Store.Rewind compute the key here.
func leaderKey(ctx context.Context, q queryRower, namespace, projectionName string) (int64, string, error) {
	if namespace == "" {
		if err := q.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&namespace); err != nil {
			return 0, "", fmt.Errorf("read the current schema: %w", err)
		}
	}
	return LockKey(namespace, projectionName), namespace, nil
}
