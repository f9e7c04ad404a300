package migration

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	"ariga.io/atlas/sql/postgres"
	"ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlcheck"
)

// ZeroDowntimeAnalyzer is the name of chatdb's analyzer of changes that stall
// traffic on PostgreSQL while they run: statements that hold a lock which
// blocks writes (or reads too) for as long as they scan or rewrite a table
// that already holds rows. Atlas's open-source analyzers judge whether a
// change can fail or lose data, not how long it locks, so it is chatdb's own.
// A table "already exists" when the file does not create it: a change to a
// table the same file creates runs on an empty table and is fine.
//
//   - ZD101: CREATE INDEX without CONCURRENTLY on an existing table
//     (also a UNIQUE constraint added with ALTER TABLE, which builds its index
//     the same way). It holds a SHARE lock, blocking every write, for the whole
//     build. Write CREATE INDEX CONCURRENTLY, in a file of its own that starts
//     with `-- atlas:txmode none` (CONCURRENTLY cannot run in a transaction);
//     for a UNIQUE constraint, build the unique index concurrently first, then
//     ADD CONSTRAINT ... UNIQUE USING INDEX.
//   - ZD102: a column type change that rewrites the table (and its
//     indexes) under an ACCESS EXCLUSIVE lock, which blocks reads too. The type
//     changes PostgreSQL makes without a rewrite are the binary-coercible ones
//     and those whose length coercion only widens: varchar(n) to varchar(m>=n)
//     or to varchar or text; varchar or text to unbounded varchar or text;
//     numeric(p,s) to numeric(q>=p,s) or to numeric; timestamp[tz](p) to a
//     greater precision or none (likewise time, timetz, interval); bit
//     varying(n) to bit varying(m>=n) or unbounded; cidr to inet. Everything
//     else, such as integer to bigint, varchar to a narrower varchar, text to
//     integer, or timestamp to timestamptz (rewritten unless the session's
//     time zone is UTC), is reported. Add a new column, backfill it in
//     batches and switch over instead.
//   - ZD103: SET NOT NULL on a column of an existing table. PostgreSQL
//     scans the whole table under an ACCESS EXCLUSIVE lock to prove it, unless
//     a valid CHECK (col IS NOT NULL) constraint already does: add that
//     constraint NOT VALID, VALIDATE CONSTRAINT it (which does not block
//     writes), then SET NOT NULL and drop the check. The analyzer takes any
//     such CHECK present when the statement runs as that proof. Atlas's
//     data_depend analyzer also reports SET NOT NULL (MF104: it fails if a row
//     holds NULL), for another reason; a new NOT NULL column
//     without a default on an existing table is Atlas's MF103 (an error) and
//     not reported again here (with a default, PostgreSQL 11 and later add
//     the column without a rewrite).
//   - ZD104: a CHECK or FOREIGN KEY constraint added to an existing
//     table without NOT VALID. Adding it validates every row while holding an
//     ACCESS EXCLUSIVE lock (CHECK) or a SHARE ROW EXCLUSIVE lock on both
//     tables (FOREIGN KEY). Add it NOT VALID, then VALIDATE CONSTRAINT in a
//     later statement, which takes a lock that lets reads and writes go on.
//   - ZD105 (an error): a CONCURRENTLY statement in a file without the
//     `-- atlas:txmode none` directive. PostgreSQL refuses it inside a
//     transaction, where Migrate (and the Atlas CLI) run every other file, so
//     the file would fail when applied; the dev database lint replays on runs
//     statements one by one and cannot show it.
//
// ZD101 to ZD104 are warnings (see ZeroDowntimeErrors): how long a lock stalls traffic
// depends on the table's size and load, which the lint cannot see, and a
// statement on a table of a few rows, or run in a maintenance window, is fine.
// The file's author decides, and says so with `-- atlas:nolint ZD101 <reason>`
// when the warning is read and the change kept.
//
// Atlas's changes carry what each statement changed but not its CONCURRENTLY
// or NOT VALID clause (postgres.Concurrently and postgres.NotValid are
// planning options, not inspected), so those two words are looked for in the
// statement's text. It runs on PostgreSQL files only: on SQLite the database
// is a file with one writer, and these statements have no concurrent form.
const ZeroDowntimeAnalyzer = "zero-downtime"

// Codes of the zero-downtime findings.
const (
	codeIndexNotConcurrent = "ZD101"
	codeTableRewrite       = "ZD102"
	codeSetNotNull         = "ZD103"
	codeConstraintValidate = "ZD104"
	codeConcurrentInTx     = "ZD105"
)

// zeroDowntime implements sqlcheck.NamedAnalyzer.
type zeroDowntime struct{}

// Name implements sqlcheck.NamedAnalyzer.
func (zeroDowntime) Name() string { return ZeroDowntimeAnalyzer }

// ZeroDowntimeErrors lists the zero-downtime codes whose findings fail the
// lint; the others warn. Only ZD105, a file that cannot apply, is an error by
// default (see ZeroDowntimeAnalyzer). A program that wants the others to fail,
// as a CI gate for large tables, sets them here before calling Lint.
var ZeroDowntimeErrors = map[string]bool{codeConcurrentInTx: true}

// isError reports whether a finding of code fails the lint.
func (zeroDowntime) isError(code string) bool { return ZeroDowntimeErrors[code] }

var (
	concurrently = regexp.MustCompile(`(?i)\bCONCURRENTLY\b`)
	notValid     = regexp.MustCompile(`(?i)\bNOT\s+VALID\b`)
)

// Analyze implements sqlcheck.Analyzer.
func (zeroDowntime) Analyze(_ context.Context, p *sqlcheck.Pass) error {
	var diags []sqlcheck.Diagnostic
	txNone := false
	if lf, ok := p.File.File.(interface{ Directive(string) []string }); ok {
		txNone = slices.Contains(lf.Directive("txmode"), "none")
	}
	for _, c := range p.File.Changes {
		if !txNone && concurrently.MatchString(c.Stmt.Text) {
			diags = append(diags, sqlcheck.Diagnostic{Pos: c.Stmt.Pos, Code: codeConcurrentInTx,
				Text: "CONCURRENTLY cannot run inside a transaction, where this file runs: start the file with `-- atlas:txmode none` and a blank line (and keep other changes in files of their own)"})
		}
		for _, ch := range c.Changes {
			m, ok := ch.(*schema.ModifyTable)
			if !ok || p.File.TableSpan(m.T)&sqlcheck.SpanAdded != 0 {
				continue
			}
			for _, code := range zeroDowntimeProblems(p.File, c.Stmt.Text, m) {
				diags = append(diags, sqlcheck.Diagnostic{Pos: c.Stmt.Pos, Code: code[0], Text: code[1]})
			}
		}
	}
	if len(diags) > 0 {
		p.Reporter.WriteReport(sqlcheck.Report{Text: ZeroDowntimeAnalyzer, Diagnostics: diags})
	}
	return nil
}

// zeroDowntimeProblems returns, as {code, message} pairs, what stmt does to m,
// an existing table, against the rules of ZeroDowntimeAnalyzer.
func zeroDowntimeProblems(f *sqlcheck.File, stmt string, m *schema.ModifyTable) [][2]string {
	var out [][2]string
	add := func(code, format string, args ...any) {
		out = append(out, [2]string{code, fmt.Sprintf(format, args...)})
	}
	for _, c := range m.Changes {
		switch c := c.(type) {
		case *schema.AddIndex:
			if !concurrently.MatchString(stmt) {
				add(codeIndexNotConcurrent, "building index %q on existing table %q without CONCURRENTLY blocks its writes for the whole build: use CREATE INDEX CONCURRENTLY in a file of its own starting with `-- atlas:txmode none`", c.I.Name, m.T.Name)
			}
		case *schema.ModifyColumn:
			if f.ColumnSpan(m.T, c.From)&sqlcheck.SpanAdded != 0 {
				continue
			}
			if c.Change.Is(schema.ChangeType) && rewrites(c.From.Type.Type, c.To.Type.Type) {
				add(codeTableRewrite, "changing column %q of existing table %q from %s to %s rewrites the table and its indexes under an ACCESS EXCLUSIVE lock: add a new column, backfill it in batches and switch over", c.To.Name, m.T.Name, typeName(c.From.Type.Type), typeName(c.To.Type.Type))
			}
			if c.From.Type.Null && !c.To.Type.Null && !hasNotNullCheck(m.T, c.To.Name) {
				add(codeSetNotNull, "SET NOT NULL on column %q of existing table %q scans the table under an ACCESS EXCLUSIVE lock: first add CHECK (%s IS NOT NULL) NOT VALID and VALIDATE CONSTRAINT it", c.To.Name, m.T.Name, c.To.Name)
			}
		case *schema.AddCheck:
			if !notValid.MatchString(stmt) {
				add(codeConstraintValidate, "adding CHECK constraint %q to existing table %q validates every row under an ACCESS EXCLUSIVE lock: add it NOT VALID, then VALIDATE CONSTRAINT it", c.C.Name, m.T.Name)
			}
		case *schema.AddForeignKey:
			if !notValid.MatchString(stmt) {
				add(codeConstraintValidate, "adding foreign key %q to existing table %q validates every row while blocking writes to both tables: add it NOT VALID, then VALIDATE CONSTRAINT it", c.F.Symbol, m.T.Name)
			}
		}
	}
	return out
}

// hasNotNullCheck reports whether t has a CHECK constraint that is just
// "column IS NOT NULL", which lets PostgreSQL skip SET NOT NULL's scan (if it
// is validated, which the inspected schema does not say).
func hasNotNullCheck(t *schema.Table, column string) bool {
	re := regexp.MustCompile(`(?i)^[(\s]*"?` + regexp.QuoteMeta(column) + `"?\s+IS\s+NOT\s+NULL[)\s]*$`)
	for _, a := range t.Attrs {
		if c, ok := a.(*schema.Check); ok && re.MatchString(c.Expr) {
			return true
		}
	}
	return false
}

// typeName formats t as PostgreSQL spells it, or by its Go type when Atlas
// cannot format it.
func typeName(t schema.Type) string {
	if s, err := postgres.FormatType(t); err == nil {
		return s
	}
	return fmt.Sprintf("%T", t)
}

// rewrites reports whether changing a column from type a to type b makes
// PostgreSQL rewrite the table: see ZeroDowntimeAnalyzer for the changes that
// do not. Anything not known to be free is taken as a rewrite.
func rewrites(a, b schema.Type) bool {
	switch a := a.(type) {
	case *schema.StringType:
		b, ok := b.(*schema.StringType)
		if !ok {
			return true
		}
		from, to := stringKind(a), stringKind(b)
		switch {
		case from == "" || to == "":
			return true
		case to == "text" || to == "varchar" && b.Size == 0:
			// Binary coercible from varchar(n), varchar and text.
			return false
		case from == "varchar" && to == "varchar":
			// A length coercion that only widens: varchar(n) to varchar(m>=n).
			return a.Size == 0 || b.Size < a.Size
		}
		return true
	case *schema.DecimalType:
		b, ok := b.(*schema.DecimalType)
		if !ok || a.T != "numeric" || b.T != "numeric" {
			return true
		}
		// numeric(p,s) to numeric, or to numeric(q>=p,s).
		return b.Precision != 0 && (a.Precision == 0 || b.Precision < a.Precision || b.Scale != a.Scale)
	case *schema.TimeType:
		b, ok := b.(*schema.TimeType)
		if !ok || a.T != b.T {
			return true
		}
		// Precision only: none (6) or a greater one.
		return b.Precision != nil && *b.Precision < 6 && (a.Precision == nil || *b.Precision < *a.Precision)
	case *postgres.IntervalType:
		b, ok := b.(*postgres.IntervalType)
		if !ok || a.F != b.F {
			return true
		}
		return b.Precision != nil && *b.Precision < 6 && (a.Precision == nil || *b.Precision < *a.Precision)
	case *postgres.BitType:
		b, ok := b.(*postgres.BitType)
		if !ok || a.T != "bit varying" || b.T != "bit varying" {
			return true
		}
		return b.Len != 0 && (a.Len == 0 || b.Len < a.Len)
	case *postgres.NetworkType:
		b, ok := b.(*postgres.NetworkType)
		return !ok || !(a.T == b.T || a.T == "cidr" && b.T == "inet")
	}
	return true
}

// stringKind returns "varchar" or "text" for those string types, else "".
func stringKind(t *schema.StringType) string {
	switch t.T {
	case "character varying", "varchar":
		return "varchar"
	case "text":
		return "text"
	}
	return ""
}
