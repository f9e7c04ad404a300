package migration_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
)

// TestShardReadinessCommitted pins what keeps today's PostgreSQL schema from
// being distributed by chat as it is. Each line is a step of the conversion
// that SCALING.md plans ("What the schema already does, and what it does
// not"); a new finding here is a new obstacle, to plan or to avoid.
func TestShardReadinessCommitted(t *testing.T) {
	t.Parallel()
	_, dir := committed(t, database.Postgres)
	files, err := dir.Files()
	require.NoError(t, err)
	report, err := migration.Lint(t.Context(), database.Postgres, dir, len(files), devURL(t))
	require.NoError(t, err)
	require.False(t, report.Failed())
	var got []string
	for _, f := range report.Findings {
		if f.Analyzer != migration.ShardAnalyzer {
			continue
		}
		require.False(t, f.Error, "shard-readiness only warns: %s", f)
		// File, code and the object named; the wording may change.
		what, _, _ := strings.Cut(f.Message, " of chat-scoped")
		what, _, _ = strings.Cut(what, " from chat-scoped")
		got = append(got, filepath.Base(f.File)+" "+f.Code+" "+what+" "+tableOf(f.Message))
	}
	require.ElementsMatch(t, []string{
		"20261125231914_initial.sql SR101 primary key memberships",
		"20261125231914_initial.sql SR101 primary key messages",
		"20261125231914_initial.sql SR102 foreign key messages_messages_replies messages",
		"20261125232107_direct_chat_key.sql SR101 unique index chats_direct_key_key chats",
	}, got)
}

// tableOf returns the first quoted name in msg.
func tableOf(msg string) string {
	_, rest, _ := strings.Cut(msg, `"`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// TestShardReadinessFindings: keys and foreign keys a new file adds, judged
// by the rules of ShardAnalyzer, as warnings that do not fail the lint.
func TestShardReadinessFindings(t *testing.T) {
	t.Parallel()
	dev := devURL(t)
	for _, tc := range []struct {
		name, sql string
		want      []string // "line: code", in order
	}{
		{
			name: "chat_scoped_keys_include_chat_id",
			sql: `CREATE TABLE "reactions" ("chat_id" uuid NOT NULL, "message_id" uuid NOT NULL, "user_id" uuid NOT NULL, "emoji" text NOT NULL,` +
				` PRIMARY KEY ("chat_id", "message_id", "user_id", "emoji"),` +
				` CONSTRAINT "reactions_chat_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON DELETE CASCADE,` +
				` CONSTRAINT "reactions_user_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE);` + "\n" +
				`CREATE UNIQUE INDEX "reactions_one_key" ON "reactions" ("user_id", "chat_id", "message_id");` + "\n",
		},
		{
			name: "primary_key_without_chat_id",
			sql:  `CREATE TABLE "pins" ("id" uuid NOT NULL, "chat_id" uuid NOT NULL, PRIMARY KEY ("id"));` + "\n",
			want: []string{"1: SR101"},
		},
		{
			name: "unique_index_without_chat_id",
			sql: `CREATE TABLE "pins" ("chat_id" uuid NOT NULL, "message_id" uuid NOT NULL, PRIMARY KEY ("chat_id", "message_id"));` + "\n" +
				"\n" +
				`CREATE UNIQUE INDEX "pins_message_key" ON "pins" ("message_id");` + "\n",
			want: []string{"3: SR101"},
		},
		{
			name: "foreign_key_across_chats",
			sql: `CREATE TABLE "pins" ("chat_id" uuid NOT NULL, "message_id" uuid NOT NULL, PRIMARY KEY ("chat_id", "message_id"),` +
				` CONSTRAINT "pins_message_fkey" FOREIGN KEY ("message_id") REFERENCES "messages" ("id"));` + "\n",
			want: []string{"1: SR102"},
		},
		{
			name: "foreign_key_added_later",
			sql: `CREATE TABLE "pins" ("chat_id" uuid NOT NULL, "message_id" uuid NOT NULL, PRIMARY KEY ("chat_id", "message_id"));` + "\n" +
				`ALTER TABLE "pins" ADD CONSTRAINT "pins_message_fkey" FOREIGN KEY ("message_id") REFERENCES "messages" ("id");` + "\n",
			want: []string{"2: SR102"},
		},
		{
			name: "paired_foreign_key",
			sql: "-- atlas:nolint MF101 id is the primary key, so (chat_id, id) is unique already\n" +
				`CREATE UNIQUE INDEX "messages_chat_id_key" ON "messages" ("chat_id", "id");` + "\n" +
				`CREATE TABLE "pins" ("chat_id" uuid NOT NULL, "message_id" uuid NOT NULL, PRIMARY KEY ("chat_id", "message_id"),` +
				` CONSTRAINT "pins_message_fkey" FOREIGN KEY ("chat_id", "message_id") REFERENCES "messages" ("chat_id", "id"));` + "\n",
		},
		{
			name: "not_chat_scoped",
			sql:  `CREATE TABLE "tags" ("id" uuid NOT NULL, "name" text NOT NULL, PRIMARY KEY ("id"));` + "\n" + `CREATE UNIQUE INDEX "tags_name_key" ON "tags" ("name");` + "\n",
		},
		{
			name: "silenced",
			sql: "-- atlas:nolint shard-readiness pins are moved to the pin service before sharding\n" +
				`CREATE TABLE "pins" ("id" uuid NOT NULL, "chat_id" uuid NOT NULL, PRIMARY KEY ("id"));` + "\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			report, err := migration.Lint(t.Context(), database.Postgres, withFile(t, database.Postgres, tc.name, tc.sql), 1, dev)
			require.NoError(t, err)
			var got []string
			for _, f := range report.Findings {
				if f.Analyzer == migration.ZeroDowntimeAnalyzer {
					continue // TestZeroDowntimeFindings
				}
				require.Equal(t, migration.ShardAnalyzer, f.Analyzer, "only shard-readiness: %s", f)
				require.False(t, f.Error)
				require.NotContains(t, f.String(), "\n")
				got = append(got, fmt.Sprintf("%d: %s", f.Line, f.Code))
			}
			require.Equal(t, tc.want, got, "findings: %v", report.Findings)
			require.False(t, report.Failed(), "shard-readiness warns")
		})
	}
}

// TestShardReadinessPostgresOnly: SQLite is never sharded, so its files are
// not judged.
func TestShardReadinessPostgresOnly(t *testing.T) {
	t.Parallel()
	dir := withFile(t, database.SQLite, "pins", "CREATE TABLE `pins` (`id` uuid NOT NULL, `chat_id` uuid NOT NULL, PRIMARY KEY (`id`));\n")
	report, err := migration.Lint(t.Context(), database.SQLite, dir, 1, "")
	require.NoError(t, err)
	require.Empty(t, report.Findings)
}
