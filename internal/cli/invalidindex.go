package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/chatdb/chatdb/database"
)

// invalidIndexes returns what `migrate status` and `doctor` say about the
// database's invalid indexes (database.InvalidIndex): what they are, and how
// to repair them; both empty when there are none (always on SQLite).
func invalidIndexes(ctx context.Context, db *database.DB) (detail, repair string, n int, err error) {
	idx, err := db.InvalidIndexes(ctx)
	if err != nil || len(idx) == 0 {
		return "", "", 0, err
	}
	names := make([]string, len(idx))
	repairs := make([]string, len(idx))
	for i, ix := range idx {
		names[i] = fmt.Sprintf("%s.%s on %s", ix.Schema, ix.Name, ix.Table)
		repairs[i] = ix.Repair()
	}
	detail = fmt.Sprintf("%d invalid index(es), left by a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY that failed or was interrupted (PostgreSQL maintains them on every write but never uses them): %s",
		len(idx), strings.Join(names, ", "))
	repair = "repair (after removing any duplicates a unique index failed on): " + strings.Join(repairs, " | ")
	return detail, repair, len(idx), nil
}

// printInvalidIndexes prints the invalid indexes for `migrate status`, and
// returns how many there are.
func printInvalidIndexes(ctx context.Context, w io.Writer, db *database.DB) (int, error) {
	detail, repair, n, err := invalidIndexes(ctx, db)
	if err != nil || n == 0 {
		return 0, err
	}
	fmt.Fprintf(w, "%s\n  %s\n", detail, repair)
	return n, nil
}
