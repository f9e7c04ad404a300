package database_test

import (
	"testing"
	"time"

	"ariga.io/atlas/sql/migrate"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
)

// TestMigrateMovesPasswordHashes applies the migrations before
// privacy_one_source to a database holding password hashes in users and the
// text of a deleted message, then the rest: the hashes are in credentials, each
// under its user's ID, users has no hash column, and the deleted text is gone
// while live messages keep theirs.
func TestMigrateMovesPasswordHashes(t *testing.T) {
	t.Parallel()
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		ctx := t.Context()
		files := migEmbedded(t, db.Dialect())
		i := 0
		for i < len(files) && files[i].Desc() != "privacy_one_source" {
			i++
		}
		require.Less(t, i, len(files), "no privacy_one_source migration")
		before := &migrate.MemDir{}
		require.NoError(t, before.CopyFiles(files[:i]))
		require.NoError(t, database.Migrate(ctx, db, database.WithDir(before)))

		now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		withHash, without, chatID, live, gone := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
		exec := func(q string, args ...any) {
			t.Helper()
			_, err := db.SQL().ExecContext(ctx, q, args...)
			require.NoError(t, err)
		}
		exec(`INSERT INTO users (id, created_at, updated_at, email, display_name, password_hash, status) VALUES ($1, $2, $2, 'a@example.com', 'A', '$argon2id$secret', 'active')`, withHash, now)
		exec(`INSERT INTO users (id, created_at, updated_at, email, display_name, status) VALUES ($1, $2, $2, 'b@example.com', 'B', 'active')`, without, now)
		exec(`INSERT INTO chats (id, created_at, updated_at, kind, last_message_at, created_by) VALUES ($1, $2, $2, 'group', $2, $3)`, chatID, now, withHash)
		exec(`INSERT INTO messages (id, chat_id, sender_id, role, content, metadata, created_at) VALUES ($1, $2, $3, 'user', 'kept', NULL, $4)`, live, chatID, withHash, now)
		exec(`INSERT INTO messages (id, chat_id, sender_id, role, content, metadata, created_at, deleted_at) VALUES ($1, $2, $3, 'user', 'regrettable', '{"model":"m"}', $4, $4)`, gone, chatID, without, now.Add(time.Second))

		require.NoError(t, database.Migrate(ctx, db))

		var (
			credID, userID uuid.UUID
			hash           string
			n              int
		)
		require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM credentials`).Scan(&n))
		require.Equal(t, 1, n, "a user without a hash gets no credential")
		require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT id, user_id, password_hash FROM credentials`).Scan(&credID, &userID, &hash))
		require.Equal(t, withHash, userID)
		require.Equal(t, withHash, credID)
		require.Equal(t, "$argon2id$secret", hash)
		_, err := db.SQL().ExecContext(ctx, `SELECT password_hash FROM users`)
		require.Error(t, err, "users keeps no hash column")

		var content, metadata *string
		require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT content, metadata FROM messages WHERE id = $1`, gone).Scan(&content, &metadata))
		require.Nil(t, content)
		require.Nil(t, metadata)
		require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT content FROM messages WHERE id = $1`, live).Scan(&content))
		require.Equal(t, "kept", *content)
		// And the constraint holds from now on.
		_, err = db.SQL().ExecContext(ctx, `UPDATE messages SET content = 'back' WHERE id = $1`, gone)
		require.ErrorIs(t, database.MapError(err), database.ErrCheck)
	})
}
