package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/tracking"
)

// Notify announces on channel, inside tx, that projection has committed s (for a rewind
// outside a batch, such as a reset: s is then the state it was rewound to). Waiters in every
// process that LISTENs on channel see s when tx commits. The payload is the one Apply sends.
func Notify(ctx context.Context, tx pgx.Tx, channel, projection string, s tracking.State) error {
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, fmt.Sprintf("%d %s", s.Reached(), projection)); err != nil {
		return fmt.Errorf("postgres: notify %q of %v: %w", projection, s, err)
	}
	return nil
}
