package migration

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/schema"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/migrations"
)

// Errors returned by PlanDown and Down. Match them with errors.Is.
var (
	// ErrNothingApplied is returned by PlanDown when the database has no
	// applied migration to revert.
	ErrNothingApplied = errors.New("migration: down: no migration is applied")
	// ErrDownCount is returned by PlanDown when asked to revert fewer than one
	// file or more files than are applied.
	ErrDownCount = errors.New("migration: down: bad number of files to revert")
	// ErrDestructive is returned by Down when the plan would delete data and
	// destructive steps were not allowed; the error is a *DestructiveError.
	ErrDestructive = errors.New("migration: down: the plan deletes data")
)

// DownPlan is what PlanDown worked out.
type DownPlan struct {
	// Reverted lists the applied files to revert, newest first.
	Reverted []string
	// Versions are their versions, newest first.
	Versions []string
	// Changes lists the SQL statements, planned by Atlas's driver, that take
	// the live schema to the schema the other applied files produce. It is
	// empty when the reverted files changed nothing Atlas inspects.
	Changes []string
	// Destructive lists the findings about planned statements that would
	// delete data: dropping a table that has rows (DS102) or a column that
	// has a value other than NULL in some row (DS103), in the form
	// "[destructive DS103] message: statement". A drop of an empty table or
	// an all-NULL column loses nothing and is not listed.
	Destructive []string
	// Guards are the drops that held no data when planned: Down checks, under
	// the migration lock and before any statement, that they still hold none
	// (database.RevertGuard), so that data written after the plan is not
	// dropped without --allow-destructive.
	Guards []database.RevertGuard
}

// DestructiveError is returned by Down when the plan deletes data and that
// was not allowed. errors.Is(err, ErrDestructive) holds.
type DestructiveError struct {
	// Findings are DownPlan.Destructive.
	Findings []string
}

func (e *DestructiveError) Error() string {
	return fmt.Sprintf("%v: %s (revert anyway with --allow-destructive)", ErrDestructive, strings.Join(e.Findings, "; "))
}

// Is reports whether target is ErrDestructive.
func (e *DestructiveError) Is(target error) bool { return target == ErrDestructive }

// PlanDown plans the revert of the newest n migrations applied to db, as the
// Atlas CLI's `migrate down` does: the applied files except those n are
// replayed on a clean dev database (the one Drift uses: a temporary database
// on the PostgreSQL server devURL names, dropped before PlanDown returns, or
// a private in-memory SQLite database), its schema is inspected, and Atlas's
// driver plans the statements from the live schema to it. dir is the
// migration directory; nil means the one built into chatdb for db's dialect.
// db is only read.
//
// The plan is then linted: each drop of a table or a column is checked
// against the live data (one EXISTS query each), and the ones that would
// delete data are listed in Destructive. Because the plan starts from the
// live schema, a change made by hand (drift, see Drift) is reverted too.
// Comments are not compared, as in Drift.
func PlanDown(ctx context.Context, db *database.DB, dir migrate.Dir, devURL string, n int) (*DownPlan, error) {
	dialect := db.Dialect()
	if dir == nil {
		var err error
		if dir, err = migrations.Dir(dialect); err != nil {
			return nil, fmt.Errorf("migration: down: %w", err)
		}
	}
	st, err := database.Migrations(ctx, db, database.WithDir(dir))
	if err != nil {
		return nil, fmt.Errorf("migration: down: %w", err)
	}
	switch {
	case len(st.Applied) == 0:
		return nil, fmt.Errorf("%w to %s", ErrNothingApplied, db.URL())
	case n < 1:
		return nil, fmt.Errorf("%w: %d (give at least 1)", ErrDownCount, n)
	case n > len(st.Applied):
		return nil, fmt.Errorf("%w: %d asked, only %d applied to %s", ErrDownCount, n, len(st.Applied), db.URL())
	}
	keep := st.Applied[:len(st.Applied)-n]
	plan := &DownPlan{}
	for i := len(st.Applied) - 1; i >= len(keep); i-- {
		plan.Reverted = append(plan.Reverted, st.Applied[i].File())
		plan.Versions = append(plan.Versions, st.Applied[i].Version)
	}
	applied, err := appliedFiles(dir, keep)
	if err != nil {
		return nil, err
	}
	drv, changes, err := liveToFiles(ctx, db, applied.dir, devURL, "down")
	if err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		return plan, nil
	}
	p, err := planAsFiles(ctx, drv, "down", changes)
	if err != nil {
		return nil, err
	}
	seen := make(map[schema.Change]bool)
	for _, c := range p.Changes {
		stmt := c.Cmd + ";"
		plan.Changes = append(plan.Changes, stmt)
		if c.Source == nil || seen[c.Source] {
			continue
		}
		seen[c.Source] = true
		for _, g := range drops(c.Source) {
			g.Finding += ": " + oneLine(stmt)
			ok, err := exists(ctx, db, g.Query)
			if err != nil {
				return nil, err
			}
			if ok {
				plan.Destructive = append(plan.Destructive, g.Finding)
			} else {
				plan.Guards = append(plan.Guards, g)
			}
		}
	}
	return plan, nil
}

// Down applies plan to db (database.Revert: under the migration lock, in one
// transaction, deleting the reverted versions from the revisions table). A
// plan with destructive findings is refused with a *DestructiveError unless
// allowDestructive.
func Down(ctx context.Context, db *database.DB, plan *DownPlan, allowDestructive bool, opts ...database.MigrateOption) error {
	if !allowDestructive {
		if len(plan.Destructive) > 0 {
			return &DestructiveError{Findings: plan.Destructive}
		}
		opts = append(opts, database.WithRevertGuards(plan.Guards...))
	}
	return database.Revert(ctx, db, plan.Versions, plan.Changes, opts...)
}

// drops returns, for each table or column change c drops, the check that
// finds data it would delete: dropping a table with rows (DS102), or a column
// with a value other than NULL in some row (DS103).
func drops(c schema.Change) []database.RevertGuard {
	var out []database.RevertGuard
	switch c := c.(type) {
	case *schema.DropTable:
		out = append(out, database.RevertGuard{Table: c.T.Name, Query: "SELECT 1 FROM " + quote(c.T.Name),
			Finding: fmt.Sprintf("[destructive DS102] dropping table %q deletes its rows", c.T.Name)})
	case *schema.ModifyTable:
		for _, tc := range c.Changes {
			if dc, isDrop := tc.(*schema.DropColumn); isDrop {
				out = append(out, database.RevertGuard{Table: c.T.Name,
					Query:   "SELECT 1 FROM " + quote(c.T.Name) + " WHERE " + quote(dc.C.Name) + " IS NOT NULL",
					Finding: fmt.Sprintf("[destructive DS103] dropping column %q of %q deletes its values", dc.C.Name, c.T.Name)})
			}
		}
	}
	return out
}

func exists(ctx context.Context, db *database.DB, query string) (bool, error) {
	var ok bool
	if err := db.SQL().QueryRowContext(ctx, "SELECT EXISTS ("+query+")").Scan(&ok); err != nil {
		return false, fmt.Errorf("migration: down: check for data: %w", database.MapError(err))
	}
	return ok, nil
}

// quote quotes an identifier; both dialects take double quotes.
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// oneLine folds a statement onto one line for an error message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
