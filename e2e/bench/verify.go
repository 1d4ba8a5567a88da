package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Check is one assertion on a view: Query returns one number, which must equal Want of the
// counts of the events projected. A check runs only when its Table exists, so that any set of
// projections that builds the training school's tables is checked.
type Check struct {
	Table string
	Query string
	Want  func(Counts) int64
}

// TrainingSchoolChecks returns the checks of the training school's views: the dogs and
// dog_tricks tables of examples/training_school.yaml and the dog_counts table of
// examples/dog_counts.yaml.
func TrainingSchoolChecks() []Check {
	return []Check{
		{"dogs", "SELECT count(*) FROM dogs", func(c Counts) int64 { return c.Registered }},
		{"dogs", "SELECT coalesce(sum(tricks), 0) FROM dogs", func(c Counts) int64 { return c.Tricks }},
		{"dog_tricks", "SELECT count(*) FROM dog_tricks", func(c Counts) int64 { return c.Tricks }},
		{"dog_counts", "SELECT coalesce(sum(n), 0) FROM dog_counts WHERE name = 'dogs'", func(c Counts) int64 { return c.Registered }},
		{"dog_counts", "SELECT coalesce(sum(n), 0) FROM dog_counts WHERE name = 'tricks'", func(c Counts) int64 { return c.Tricks }},
	}
}

// Verify runs every check of checks whose table exists in the database at dbURL against want,
// and returns a description of the checks run. A wrong figure is an error naming the query and
// both figures; so is a database where no check applies.
func Verify(ctx context.Context, dbURL string, checks []Check, want Counts) (string, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", fmt.Errorf("verify: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var errs []error
	var ran []string
	for _, c := range checks {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", c.Table).Scan(&exists); err != nil {
			return "", fmt.Errorf("verify: look up table %s: %w", c.Table, err)
		}
		if !exists {
			continue
		}
		var got int64
		if err := conn.QueryRow(ctx, c.Query).Scan(&got); err != nil {
			return "", fmt.Errorf("verify: %s: %w", c.Query, err)
		}
		if w := c.Want(want); got != w {
			errs = append(errs, fmt.Errorf("%s: %d, want %d", c.Query, got, w))
			continue
		}
		ran = append(ran, c.Table)
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("the view is wrong:\n  %w", errors.Join(errs...))
	}
	if len(ran) == 0 {
		return "", errors.New("verify: none of the checked tables (dogs, dog_tricks, dog_counts) exists: nothing verifies the view")
	}
	return fmt.Sprintf("%d checks on %s", len(ran), strings.Join(dedupe(ran), ", ")), nil
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
