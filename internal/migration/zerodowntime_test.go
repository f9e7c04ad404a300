package migration_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
	"github.com/chatdb/chatdb/migrations"
)

// zdBase is an older file the reviewed one changes: its table "zd" exists
// when the reviewed file runs.
const zdBase = `CREATE TABLE "zd" ("id" integer NOT NULL, "n" integer NULL, "name" character varying(10) NULL, "label" character varying NULL,` +
	` "body" text NULL, "amount" numeric(10,2) NULL, "at" timestamptz(3) NULL, "net" cidr NULL, "note" text NULL, "user_id" uuid NULL, PRIMARY KEY ("id"));` + "\n"

// withFiles returns a copy of the embedded PostgreSQL directory with the
// given files added after it, named 2999010100000N_NAME.sql.
func withFiles(t *testing.T, files ...[2]string) *migrate.MemDir {
	t.Helper()
	src, err := migrations.Dir(database.Postgres)
	require.NoError(t, err)
	all, err := src.Files()
	require.NoError(t, err)
	for i, f := range files {
		all = append(all, migrate.NewLocalFile(fmt.Sprintf("2999010100000%d_%s.sql", i, f[0]), []byte(f[1])))
	}
	dir := &migrate.MemDir{}
	require.NoError(t, dir.CopyFiles(all))
	return dir
}

// TestZeroDowntimeFindings: each code of ZeroDowntimeAnalyzer on a file that
// changes a table an older file created, and the same change made safely, or
// on a table the file creates itself, not reported.
func TestZeroDowntimeFindings(t *testing.T) {
	t.Parallel()
	dev := devURL(t)
	alter := func(s string) string { return `ALTER TABLE "zd" ` + s + ";\n" }
	for _, tc := range []struct {
		name, sql string
		want      []string // "line: code", in order
	}{
		// ZD101
		{name: "index", sql: `CREATE INDEX "zd_n_idx" ON "zd" ("n");` + "\n", want: []string{"1: ZD101"}},
		{name: "index_on_messages", sql: `CREATE INDEX "messages_sender_idx2" ON "messages" ("sender_id");` + "\n", want: []string{"1: ZD101"}},
		{name: "unique_constraint", sql: alter(`ADD CONSTRAINT "zd_n_key" UNIQUE ("n")`), want: []string{"1: ZD101"}},
		{name: "index_concurrently", sql: "-- atlas:txmode none\n\n" + `CREATE INDEX CONCURRENTLY "zd_n_idx" ON "zd" ("n");` + "\n"},
		{name: "unique_constraint_using_index", sql: "-- atlas:txmode none\n\n" + `CREATE UNIQUE INDEX CONCURRENTLY "zd_n_key" ON "zd" ("n");` + "\n" +
			alter(`ADD CONSTRAINT "zd_n_key" UNIQUE USING INDEX "zd_n_key"`)},
		{name: "concurrently_in_tx", sql: `CREATE INDEX CONCURRENTLY "zd_n_idx" ON "zd" ("n");` + "\n", want: []string{"1: ZD105"}},
		{name: "index_on_new_table", sql: `CREATE TABLE "pins" ("id" integer NOT NULL, "n" integer NULL, PRIMARY KEY ("id"));` + "\n" + `CREATE INDEX "pins_n_idx" ON "pins" ("n");` + "\n"},
		{name: "index_silenced", sql: "-- atlas:nolint ZD101 zd has a few rows only\n" + `CREATE INDEX "zd_n_idx" ON "zd" ("n");` + "\n"},
		// ZD102
		{name: "int_to_bigint", sql: alter(`ALTER COLUMN "n" TYPE bigint`), want: []string{"1: ZD102"}},
		{name: "varchar_narrower", sql: alter(`ALTER COLUMN "name" TYPE character varying(5)`), want: []string{"1: ZD102"}},
		{name: "varchar_bounded", sql: alter(`ALTER COLUMN "label" TYPE character varying(50)`), want: []string{"1: ZD102"}},
		{name: "text_to_int", sql: alter(`ALTER COLUMN "body" TYPE integer USING "body"::integer`), want: []string{"1: ZD102"}},
		{name: "numeric_scale", sql: alter(`ALTER COLUMN "amount" TYPE numeric(12,3)`), want: []string{"1: ZD102"}},
		{name: "timestamptz_narrower", sql: alter(`ALTER COLUMN "at" TYPE timestamptz(0)`), want: []string{"1: ZD102"}},
		{name: "varchar_wider", sql: alter(`ALTER COLUMN "name" TYPE character varying(20)`)},
		{name: "varchar_to_text", sql: alter(`ALTER COLUMN "name" TYPE text`)},
		{name: "text_to_varchar", sql: alter(`ALTER COLUMN "body" TYPE character varying`)},
		{name: "numeric_wider", sql: alter(`ALTER COLUMN "amount" TYPE numeric(14,2)`)},
		{name: "timestamptz_wider", sql: alter(`ALTER COLUMN "at" TYPE timestamptz`)},
		{name: "cidr_to_inet", sql: alter(`ALTER COLUMN "net" TYPE inet`)},
		{name: "type_on_new_table", sql: `CREATE TABLE "pins" ("id" integer NOT NULL, "n" integer NULL, PRIMARY KEY ("id"));` + "\n" + `ALTER TABLE "pins" ALTER COLUMN "n" TYPE bigint;` + "\n"},
		// ZD103
		{name: "set_not_null", sql: alter(`ALTER COLUMN "note" SET NOT NULL`), want: []string{"1: ZD103"}},
		{name: "set_not_null_checked", sql: alter(`ADD CONSTRAINT "zd_note_nn" CHECK ("note" IS NOT NULL) NOT VALID`) +
			alter(`VALIDATE CONSTRAINT "zd_note_nn"`) + alter(`ALTER COLUMN "note" SET NOT NULL`) + alter(`DROP CONSTRAINT "zd_note_nn"`)},
		{name: "new_not_null_column", sql: alter(`ADD COLUMN "flag" boolean NOT NULL`)}, // Atlas's MF103
		{name: "new_column_default", sql: alter(`ADD COLUMN "flag" boolean NOT NULL DEFAULT false`)},
		// ZD104
		{name: "check", sql: alter(`ADD CONSTRAINT "zd_n_positive" CHECK ("n" > 0)`), want: []string{"1: ZD104"}},
		{name: "foreign_key", sql: alter(`ADD CONSTRAINT "zd_user_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id")`), want: []string{"1: ZD104"}},
		{name: "check_not_valid", sql: alter(`ADD CONSTRAINT "zd_n_positive" CHECK ("n" > 0) NOT VALID`) + alter(`VALIDATE CONSTRAINT "zd_n_positive"`)},
		{name: "foreign_key_not_valid", sql: alter(`ADD CONSTRAINT "zd_user_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") NOT VALID`) + alter(`VALIDATE CONSTRAINT "zd_user_fkey"`)},
		{name: "check_on_new_table", sql: `CREATE TABLE "pins" ("id" integer NOT NULL, "n" integer NULL, PRIMARY KEY ("id"));` + "\n" + `ALTER TABLE "pins" ADD CONSTRAINT "pins_n_positive" CHECK ("n" > 0);` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := withFiles(t, [2]string{"zd", zdBase}, [2]string{tc.name, tc.sql})
			report, err := migration.Lint(t.Context(), database.Postgres, dir, 1, dev)
			require.NoError(t, err)
			var got []string
			for _, f := range report.Findings {
				require.NotEqual(t, "replay", f.Analyzer, "%s", f)
				if f.Analyzer != migration.ZeroDowntimeAnalyzer {
					continue
				}
				require.Equal(t, f.Code == "ZD105", f.Error, "zero-downtime warns but for ZD105: %s", f)
				require.NotContains(t, f.String(), "\n")
				got = append(got, fmt.Sprintf("%d: %s", f.Line, f.Code))
			}
			require.Equal(t, tc.want, got, "findings: %v", report.Findings)
		})
	}
}

// TestZeroDowntimePostgresOnly: SQLite files are not judged.
func TestZeroDowntimePostgresOnly(t *testing.T) {
	t.Parallel()
	dir := withFile(t, database.SQLite, "idx", "CREATE INDEX `users_display_name_idx` ON `users` (`display_name`);\n")
	report, err := migration.Lint(t.Context(), database.SQLite, dir, 1, "")
	require.NoError(t, err)
	require.Empty(t, report.Findings)
}

// TestZeroDowntimeCommitted pins what the committed PostgreSQL files do that
// holds a lock for a whole scan or build. They were applied before the
// analyzer existed, on small tables; new files should not add to the list.
func TestZeroDowntimeCommitted(t *testing.T) {
	t.Parallel()
	_, dir := committed(t, database.Postgres)
	files, err := dir.Files()
	require.NoError(t, err)
	report, err := migration.Lint(t.Context(), database.Postgres, dir, len(files), devURL(t))
	require.NoError(t, err)
	require.False(t, report.Failed())
	var got []string
	for _, f := range report.Findings {
		if f.Analyzer == migration.ZeroDowntimeAnalyzer {
			got = append(got, fmt.Sprintf("%s:%d %s %s", filepath.Base(f.File), f.Line, f.Code, tableOf(f.Message)))
		}
	}
	require.Equal(t, []string{
		"20261125232107_direct_chat_key.sql:4 ZD101 chats_direct_key_key",
		"20261125235306_messages_reply_to_idx.sql:2 ZD101 messages_reply_to_idx",
		"20261126002532_membership_chat_last_message_at.sql:6 ZD101 memberships_user_inbox_idx",
		"20261130114145_privacy_one_source.sql:25 ZD104 messages_content_deleted",
		"20261130130106_chat_sequence.sql:11 ZD101 messages_chat_seq_key",
		"20261130130106_chat_sequence.sql:36 ZD101 memberships_user_inbox_idx",
		"20261130130106_chat_sequence.sql:38 ZD101 memberships_user_large_idx",
		"20261130140516_memberships_chat_user_key.sql:6 ZD101 memberships_chat_user_key",
	}, got)
}
