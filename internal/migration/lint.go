package migration

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"ariga.io/atlas/schemahcl"
	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	_ "ariga.io/atlas/sql/postgres/postgrescheck" // registers the PostgreSQL analyzers
	"ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlcheck"
	"ariga.io/atlas/sql/sqlclient"
	"ariga.io/atlas/sql/sqlite"
	_ "ariga.io/atlas/sql/sqlite/sqlitecheck" // registers the SQLite analyzers

	"github.com/chatdb/chatdb/database"
)

// LintRules says which of Atlas's analyzers fail the lint (true) and which only
// warn (false). It is the lint block of atlas.hcl, so that `chatdb migrate lint`
// and `atlas migrate lint` judge a file alike:
//
//   - destructive: dropping a schema, a table or a column (DS101-DS103);
//   - data_depend: changes that fail or not depending on the rows already there,
//     such as a unique index on an existing column or a NOT NULL column without
//     a default added to an existing table (MF101-MF104, LT101);
//   - incompatible: renaming a table or a column under running code (BC101,
//     BC102);
//   - condrop: dropping a foreign key together with its column (CD101).
var LintRules = map[string]bool{
	"destructive":  true,
	"data_depend":  true,
	"incompatible": true,
	"condrop":      false,
}

// nolintAnalyzer and replayAnalyzer name the findings Lint makes itself.
const (
	// nolintAnalyzer is a malformed `-- atlas:nolint` directive.
	nolintAnalyzer = "nolint"
	// replayAnalyzer is a statement that failed on the clean dev database.
	replayAnalyzer = "replay"
)

// ErrLatest is returned by Lint when asked for a negative number of files.
var ErrLatest = errors.New("migration: the number of files to lint must not be negative")

// A Finding is one diagnostic of Lint.
type Finding struct {
	// File is the migration file: its path when the directory has one
	// ("migrations/postgres/20250101120000_drop_bio.sql"), else its name.
	File string
	// Line is the 1-based line of the statement the finding is about.
	Line int
	// Analyzer names what found it: an Atlas analyzer (a key of LintRules),
	// "replay" for a statement that failed on the dev database, or "nolint" for
	// a malformed nolint directive.
	Analyzer string
	// Code is Atlas's diagnostic code, such as "DS103", documented at
	// https://atlasgo.io/lint/analyzers; empty for Lint's own findings.
	Code string
	// Message says what the statement does and why it is risky.
	Message string
	// Error reports an error-level finding, which fails the lint; otherwise it
	// is a warning.
	Error bool
}

// String formats f as "file:line: [analyzer code] message", with "warning: "
// before the message of a warning.
func (f Finding) String() string {
	tag := f.Analyzer
	if f.Code != "" {
		tag += " " + f.Code
	}
	msg := f.Message
	if !f.Error {
		msg = "warning: " + msg
	}
	return fmt.Sprintf("%s:%d: [%s] %s", f.File, f.Line, tag, msg)
}

// LintReport is the result of Lint.
type LintReport struct {
	// Files lists the names of the files analysed, oldest first.
	Files []string
	// Findings lists what the analysers found, in file and line order, after
	// nolint directives were applied.
	Findings []Finding
}

// Failed reports whether a finding is error-level.
func (r *LintReport) Failed() bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Error })
}

// Lint runs Atlas's analyzers (see LintRules) over the newest n files of dir,
// as `atlas migrate lint --latest n` does; n larger than the directory means
// every file, and 0 means none. It first checks dir against its atlas.sum and
// returns the *database.ChecksumError when they differ.
//
// The analyzers work on what each statement changes, so Lint replays the
// directory on a clean dev database, one statement at a time, inspecting the
// schema after each: the older files to reach the starting point, then the files
// under review. The dev database is the one Diff uses: a temporary database on
// the PostgreSQL server devURL names, or a private in-memory SQLite database.
// A statement that fails there ends the lint with an error-level "replay"
// finding.
//
// A finding is silenced by an `-- atlas:nolint ANALYZERS REASON` comment right
// before its statement, or at the top of the file followed by a blank line for
// the whole file, where ANALYZERS are analyzer names or codes (destructive,
// DS103, ...) and REASON says why the change is safe. The Atlas CLI reads the
// same directive. A directive that names no analyzer, or gives no reason, is
// itself an error-level "nolint" finding: Lint does not accept the Atlas CLI's
// bare `-- atlas:nolint`, which silences everything without a word.
//
// The SQLite analyzers recognise a table rebuild (create new_T, copy the rows,
// drop T, rename new_T to T) as one change of T, so the DROP TABLE it contains
// is judged by what the rebuild changes, not reported as dropping the table.
func Lint(ctx context.Context, dialect string, dir migrate.Dir, n int, devURL string) (*LintReport, error) {
	if dialect != database.Postgres && dialect != database.SQLite {
		return nil, fmt.Errorf("%w %q", ErrUnknownDialect, dialect)
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: %d", ErrLatest, n)
	}
	if err := database.ValidateDir(dir); err != nil {
		return nil, err
	}
	files, err := dir.Files()
	if err != nil {
		return nil, fmt.Errorf("migration: read %s: %w", dirPath(dir), err)
	}
	n = min(n, len(files))
	base, review := files[:len(files)-n], files[len(files)-n:]
	report := &LintReport{}
	if len(review) == 0 {
		return report, nil
	}
	azs, err := analyzers(dialect)
	if err != nil {
		return nil, err
	}
	dev, err := openDev(ctx, dialect, devURL)
	if err != nil {
		return nil, err
	}
	err = lint(ctx, dev.db, dialect, dir, base, review, azs, report)
	if err := errors.Join(err, dev.close()); err != nil {
		return nil, err
	}
	return report, nil
}

// analyzers returns Atlas's analyzers for dialect, configured by LintRules, and
// on PostgreSQL chatdb's shard-readiness analyzer (a warning, see ShardAnalyzer)
// and zero-downtime analyzer (see ZeroDowntimeAnalyzer).
func analyzers(dialect string) ([]sqlcheck.Analyzer, error) {
	cfg := &schemahcl.Resource{}
	for name, isError := range LintRules {
		r := &schemahcl.Resource{Type: name}
		r.SetAttr(schemahcl.BoolAttr("error", isError))
		cfg.Children = append(cfg.Children, r)
	}
	name := drvName(dialect)
	azs, err := sqlcheck.AnalyzerFor(name, cfg)
	if err != nil {
		return nil, fmt.Errorf("migration: lint: %w", err)
	}
	if len(azs) == 0 {
		return nil, fmt.Errorf("migration: lint: no analyzers registered for %s", name)
	}
	if dialect == database.Postgres {
		azs = append(azs, shardReadiness{}, zeroDowntime{})
	}
	return azs, nil
}

func lint(ctx context.Context, db *database.DB, dialect string, dir migrate.Dir, base, review []migrate.File, azs []sqlcheck.Analyzer, report *LintReport) error {
	drv, err := atlasDriver(dialect, db)
	if err != nil {
		return err
	}
	r := &replayer{db: db, drv: drv, dir: dir}
	for _, f := range base {
		if ok, err := r.run(ctx, f, nil, report); err != nil || !ok {
			return err
		}
	}
	if r.current, err = r.inspect(ctx); err != nil {
		return err
	}
	dev := &sqlclient.Client{Name: drvName(dialect), DB: db.SQL(), Driver: drv}
	for _, f := range review {
		report.Files = append(report.Files, f.Name())
		sf := &sqlcheck.File{File: f, From: r.current}
		ok, err := r.run(ctx, f, sf, report)
		if err != nil || !ok {
			return err
		}
		sf.To = r.current
		if sf.Sum, err = drv.RealmDiff(sf.From, sf.To); err != nil {
			return fmt.Errorf("migration: lint %s: %w", f.Name(), err)
		}
		if err := analyze(ctx, dev, sf, r.path(f), azs, report); err != nil {
			return err
		}
	}
	return nil
}

// drvName is the name Atlas registers dialect's driver and analyzers under.
func drvName(dialect string) string {
	if dialect == database.SQLite {
		return sqlite.DriverName
	}
	return postgres.DriverName
}

// atlasDriver opens Atlas's driver for dialect on db.
func atlasDriver(dialect string, db *database.DB) (migrate.Driver, error) {
	var (
		drv migrate.Driver
		err error
	)
	if dialect == database.SQLite {
		drv, err = sqlite.Open(db.SQL())
	} else {
		drv, err = postgres.Open(db.SQL())
	}
	if err != nil {
		return nil, fmt.Errorf("migration: open dev database: %w", database.MapError(err))
	}
	return drv, nil
}

// replayer runs migration files on the dev database.
type replayer struct {
	db  *database.DB
	drv migrate.Driver
	dir migrate.Dir
	// current is the dev database's schema, kept up to date by run when it
	// records changes.
	current *schema.Realm
}

func (r *replayer) path(f migrate.File) string {
	if p := pathOf(r.dir); p != "" {
		return filepath.Join(p, f.Name())
	}
	return f.Name()
}

// run executes f's statements. With sf, it inspects the schema after each
// statement and records what the statement changed in sf.Changes. A statement
// that fails is reported as a finding, and run returns false.
func (r *replayer) run(ctx context.Context, f migrate.File, sf *sqlcheck.File, report *LintReport) (bool, error) {
	stmts, err := migrate.FileStmtDecls(r.drv, f)
	if err != nil {
		report.Findings = append(report.Findings, Finding{
			File: r.path(f), Line: 1, Analyzer: replayAnalyzer, Error: true,
			Message: fmt.Sprintf("cannot split the file into statements: %v", err),
		})
		return false, nil
	}
	for _, s := range stmts {
		if _, err := r.db.SQL().ExecContext(ctx, s.Text); err != nil {
			if ctx.Err() != nil {
				return false, fmt.Errorf("migration: lint: %w", database.MapError(err))
			}
			report.Findings = append(report.Findings, Finding{
				File: r.path(f), Line: line(f, s.Pos), Analyzer: replayAnalyzer, Error: true,
				Message: fmt.Sprintf("statement fails on a clean dev database: %v", err),
			})
			return false, nil
		}
		if sf == nil {
			continue
		}
		next, err := r.inspect(ctx)
		if err != nil {
			return false, err
		}
		changes, err := r.drv.RealmDiff(r.current, next)
		if err != nil {
			return false, fmt.Errorf("migration: lint %s: %w", f.Name(), err)
		}
		r.current = next
		sf.Changes = append(sf.Changes, &sqlcheck.Change{Stmt: s, Changes: fixRenames(s.Text, changes)})
	}
	return true, nil
}

// inspect returns the dev database's schema: the current schema on PostgreSQL
// (the files name no schema), the main database on SQLite.
func (r *replayer) inspect(ctx context.Context) (*schema.Realm, error) {
	s, err := r.drv.InspectSchema(ctx, "", &schema.InspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("migration: lint: inspect dev database: %w", database.MapError(err))
	}
	if s.Realm == nil {
		return schema.NewRealm(s), nil
	}
	return s.Realm, nil
}

// line returns the 1-based line of byte offset pos in f.
func line(f migrate.File, pos int) int {
	b := f.Bytes()
	pos = min(max(pos, 0), len(b))
	return strings.Count(string(b[:pos]), "\n") + 1
}

// analyze runs azs over sf and adds their findings, minus those nolint
// directives silence, to report.
func analyze(ctx context.Context, dev *sqlclient.Client, sf *sqlcheck.File, file string, azs []sqlcheck.Analyzer, report *LintReport) error {
	names := make([]string, 0, len(azs))
	for _, az := range azs {
		if n, ok := az.(sqlcheck.NamedAnalyzer); ok {
			names = append(names, n.Name())
		}
	}
	skip, bad := nolintRules(sf, names)
	var findings []Finding
	for _, b := range bad {
		findings = append(findings, Finding{
			File: file, Line: line(sf.File, b.pos), Analyzer: nolintAnalyzer, Error: true, Message: b.msg,
		})
	}
	for _, az := range azs {
		name := ""
		if n, ok := az.(sqlcheck.NamedAnalyzer); ok {
			name = n.Name()
		}
		// chatdb's own analyzers may set the level per code; Atlas's are set
		// by LintRules.
		isError := func(string) bool { return LintRules[name] }
		if lv, ok := az.(interface{ isError(code string) bool }); ok {
			isError = lv.isError
		}
		reported := 0
		err := az.Analyze(ctx, &sqlcheck.Pass{
			File: sf,
			Dev:  dev,
			Reporter: sqlcheck.ReportWriterFunc(func(r sqlcheck.Report) {
				for _, d := range r.Diagnostics {
					reported++
					if skip.silences(d.Pos, name, d.Code) {
						continue
					}
					findings = append(findings, Finding{
						File: file, Line: line(sf.File, d.Pos), Analyzer: name, Code: d.Code,
						Message: d.Text, Error: isError(d.Code),
					})
				}
			}),
		})
		// An analyzer configured as an error returns one whenever it reports,
		// silenced or not; that is the findings' level, not a failure.
		if err != nil && reported == 0 {
			return fmt.Errorf("migration: lint %s: analyzer %s: %w", file, name, err)
		}
	}
	slices.SortStableFunc(findings, func(a, b Finding) int { return a.Line - b.Line })
	report.Findings = append(report.Findings, findings...)
	return nil
}

// skipRules are the nolint directives of a file: for each statement position,
// the analyzer names and codes they silence.
type skipRules map[int][]string

func (s skipRules) silences(pos int, analyzer, code string) bool {
	rules := s[pos]
	return analyzer != "" && slices.Contains(rules, analyzer) || code != "" && slices.Contains(rules, code)
}

type badDirective struct {
	pos int
	msg string
}

// code matches an Atlas diagnostic code, such as DS103.
var code = regexp.MustCompile(`^[A-Z]{2}[0-9]{3}$`)

// nolintRules reads the `atlas:nolint` directives of sf: those of the file
// (before its first blank line) apply to every statement, those of a
// statement's own comments to it. Each must name analyzers or codes first, then
// give a reason.
func nolintRules(sf *sqlcheck.File, analyzers []string) (skipRules, []badDirective) {
	var bad []badDirective
	parse := func(d string, pos int) []string {
		words := strings.Fields(d)
		i := 0
		for i < len(words) && (slices.Contains(analyzers, words[i]) || code.MatchString(words[i])) {
			i++
		}
		switch {
		case i == 0:
			bad = append(bad, badDirective{pos, fmt.Sprintf("atlas:nolint must name what it silences, analyzers (%s) or codes such as DS103, then say why: -- atlas:nolint destructive <reason>", strings.Join(analyzers, ", "))})
			return nil
		case i == len(words):
			bad = append(bad, badDirective{pos, fmt.Sprintf("atlas:nolint %s gives no reason: say why the change is safe after the analyzers", d)})
			return nil
		}
		return words[:i]
	}
	rules := skipRules{}
	if lf, ok := sf.File.(*migrate.LocalFile); ok {
		for _, d := range lf.Directive("nolint") {
			for _, r := range parse(d, 0) {
				for _, c := range sf.Changes {
					rules[c.Stmt.Pos] = append(rules[c.Stmt.Pos], r)
				}
			}
		}
	}
	seen := map[int]bool{}
	for _, c := range sf.Changes {
		if seen[c.Stmt.Pos] {
			continue
		}
		seen[c.Stmt.Pos] = true
		for _, d := range c.Stmt.Directive("nolint") {
			rules[c.Stmt.Pos] = append(rules[c.Stmt.Pos], parse(d, c.Stmt.Pos)...)
		}
	}
	return rules, bad
}

// Renames as the files spell them: ALTER TABLE t RENAME TO u, and ALTER TABLE t
// RENAME [COLUMN] a TO b, with identifiers quoted "..." or `...` or bare.
var (
	ident        = "(?:\"((?:[^\"]|\"\")+)\"|`([^`]+)`|([A-Za-z_][A-Za-z0-9_$]*))"
	renameTable  = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?:` + ident + `\.)?` + ident + `\s+RENAME\s+TO\s+` + ident + `\s*;?\s*$`)
	renameColumn = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?:` + ident + `\.)?` + ident + `\s+RENAME\s+(?:COLUMN\s+)?` + ident + `\s+TO\s+` + ident + `\s*;?\s*$`)
)

// identAt returns the identifier captured by the three groups of ident starting
// at group i.
func identAt(m []string, i int) string {
	for _, s := range m[i : i+3] {
		if s != "" {
			return strings.ReplaceAll(s, `""`, `"`)
		}
	}
	return ""
}

// fixRenames turns what inspecting before and after a rename shows, a drop and
// an add, back into the rename the statement is, so that the incompatible
// analyzer sees it (and the destructive one does not). The Atlas CLI does this
// with SQL parsers of its own, which are not part of the library.
func fixRenames(stmt string, changes schema.Changes) schema.Changes {
	if m := renameTable.FindStringSubmatch(stmt); m != nil {
		from, to := identAt(m, 4), identAt(m, 7)
		i := slices.IndexFunc(changes, func(c schema.Change) bool {
			d, ok := c.(*schema.DropTable)
			return ok && d.T.Name == from
		})
		j := slices.IndexFunc(changes, func(c schema.Change) bool {
			a, ok := c.(*schema.AddTable)
			return ok && a.T.Name == to
		})
		if i < 0 || j < 0 {
			return changes
		}
		fixed := schema.Changes{&schema.RenameTable{From: changes[i].(*schema.DropTable).T, To: changes[j].(*schema.AddTable).T}}
		for k, c := range changes {
			if k != i && k != j {
				fixed = append(fixed, c)
			}
		}
		return fixed
	}
	m := renameColumn.FindStringSubmatch(stmt)
	if m == nil {
		return changes
	}
	table, from, to := identAt(m, 4), identAt(m, 7), identAt(m, 10)
	for _, c := range changes {
		mt, ok := c.(*schema.ModifyTable)
		if !ok || mt.T.Name != table {
			continue
		}
		i := slices.IndexFunc(mt.Changes, func(c schema.Change) bool {
			d, ok := c.(*schema.DropColumn)
			return ok && d.C.Name == from
		})
		j := slices.IndexFunc(mt.Changes, func(c schema.Change) bool {
			a, ok := c.(*schema.AddColumn)
			return ok && a.C.Name == to
		})
		if i < 0 || j < 0 {
			continue
		}
		fixed := schema.Changes{&schema.RenameColumn{From: mt.Changes[i].(*schema.DropColumn).C, To: mt.Changes[j].(*schema.AddColumn).C}}
		for k, c := range mt.Changes {
			if k != i && k != j {
				fixed = append(fixed, c)
			}
		}
		mt.Changes = fixed
	}
	return changes
}

// FilesAddedSince returns how many of the newest files of the migration
// directory at path are new since the git revision ref: the first file that
// `git ls-tree ref` does not list there, and every file after it (the history
// is linear, so what follows a new file is new too). A directory that did not
// exist at ref is all new. path must be inside a git work tree.
func FilesAddedSince(ctx context.Context, dir migrate.Dir, path, ref string) (int, error) {
	if strings.HasPrefix(ref, "-") {
		return 0, fmt.Errorf("migration: git revision %q must not start with '-'", ref)
	}
	out, err := exec.CommandContext(ctx, "git", "-C", path, "ls-tree", "--name-only", ref, "--", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, fmt.Errorf("migration: list %s at %s: %w", path, ref, err)
	}
	old := map[string]bool{}
	for _, name := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		old[name] = true
	}
	files, err := dir.Files()
	if err != nil {
		return 0, fmt.Errorf("migration: read %s: %w", path, err)
	}
	for i, f := range files {
		if !old[f.Name()] {
			return len(files) - i, nil
		}
	}
	return 0, nil
}
