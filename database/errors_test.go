package database_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/viewer"
)

// requireKind checks that err, passed through MapError, is a *database.Error of
// the given kind, and returns it.
func requireKind(t *testing.T, err, kind error) *database.Error {
	t.Helper()
	require.Error(t, err)
	mapped := database.MapError(err)
	require.ErrorIs(t, mapped, kind, "%v", err)
	var dbErr *database.Error
	require.ErrorAs(t, mapped, &dbErr)
	require.Equal(t, kind, dbErr.Kind)
	require.Same(t, mapped, database.MapError(mapped), "mapping twice changes nothing")
	return dbErr
}

func TestMapErrorPassThrough(t *testing.T) {
	t.Parallel()
	require.NoError(t, database.MapError(nil))
	plain := errors.New("something else")
	require.Same(t, plain, database.MapError(plain))

	require.ErrorIs(t, database.MapError(sql.ErrNoRows), database.ErrNotFound)
	require.ErrorIs(t, database.MapError(fmt.Errorf("x: %w", context.DeadlineExceeded)), database.ErrTimeout)
	require.ErrorIs(t, database.MapError(driver.ErrBadConn), database.ErrBadConn)
	require.NotErrorIs(t, database.MapError(context.Canceled), database.ErrTimeout,
		"a cancelled context is the caller's decision, not a timeout")
	// Each kind is its own: an error matches exactly one sentinel.
	mapped := database.MapError(sql.ErrNoRows)
	for _, other := range []error{database.ErrConflict, database.ErrInvalidReference, database.ErrCheck,
		database.ErrInvalid, database.ErrTimeout, database.ErrSerialization, database.ErrBadConn} {
		require.NotErrorIs(t, mapped, other)
	}
	require.ErrorIs(t, mapped, sql.ErrNoRows, "the original stays reachable")
}

// invalidInput is an error of a package above database that says whether it
// is bad input, as schema.FieldError does.
type invalidInput bool

func (e invalidInput) Error() string      { return "invalid input: " + fmt.Sprint(bool(e)) }
func (e invalidInput) InvalidInput() bool { return bool(e) }

// MapError recognises bad input by its InvalidInput method, not by its type,
// wherever it is in the chain; an error that says false is left alone.
func TestMapErrorInvalidInput(t *testing.T) {
	t.Parallel()
	requireKind(t, fmt.Errorf("store: create: %w", invalidInput(true)), database.ErrInvalid)
	requireKind(t, &schema.FieldError{Field: "Message.metadata", Err: schema.ErrNULByte}, database.ErrInvalid)
	notInput := fmt.Errorf("store: create: %w", invalidInput(false))
	require.Same(t, notInput, database.MapError(notInput))
}

func TestErrNotFound(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {

		_, err := db.Client().User.Get(ctx, uuid.New())
		requireKind(t, err, database.ErrNotFound)
		var nf *ent.NotFoundError
		require.ErrorAs(t, database.MapError(err), &nf)

		err = db.SQL().QueryRowContext(ctx, "SELECT email FROM users WHERE id = $1", uuid.New()).Scan(new(string))
		requireKind(t, err, database.ErrNotFound)

		// WithTx maps what fn returns.
		err = db.WithTx(ctx, func(tx *ent.Tx) error {
			_, err := tx.Chat.Get(ctx, uuid.New())
			return err
		})
		require.ErrorIs(t, err, database.ErrNotFound)
	})
}

func TestErrConflict(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		u, err := db.Client().User.Create().SetEmail("dup@example.com").SetDisplayName("A").Save(ctx)
		require.NoError(t, err)

		for _, email := range []string{"dup@example.com", "Dup@Example.COM", " DUP@example.com "} {
			_, err := db.Client().User.Create().SetEmail(email).SetDisplayName("B").Save(ctx)
			dbErr := requireKind(t, err, database.ErrConflict)
			code := requireDriverError(t, target, err)
			if target.Postgres() {
				require.Equal(t, "23505", code)
				require.Equal(t, "23505", dbErr.Code)
				require.Equal(t, "users_email_key", dbErr.Constraint)
			} else {
				require.Equal(t, "2067", code) // SQLITE_CONSTRAINT_UNIQUE
			}
			require.True(t, ent.IsConstraintError(err))
		}

		// Through WithTx, and for a duplicate primary key.
		err = db.WithTx(ctx, func(tx *ent.Tx) error {
			_, err := tx.User.Create().SetID(u.ID).SetEmail("other@example.com").SetDisplayName("C").Save(ctx)
			return err
		})
		require.ErrorIs(t, err, database.ErrConflict)
		requireDriverError(t, target, err)
		require.Equal(t, 1, countRows(t, db, "users"))
	})
}

func TestErrInvalidReference(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		u := newUser(t, db.Client())
		c := newChat(t, db.Client(), u)

		cases := []struct {
			name         string
			userID       uuid.UUID
			chatID       uuid.UUID
			pgConstraint string
		}{
			{"no such chat", u.ID, uuid.New(), "memberships_chat_id_fkey"},
			{"no such user", uuid.New(), c.ID, "memberships_user_id_fkey"},
		}
		for _, tc := range cases {
			_, err := db.Client().Membership.Create().SetUserID(tc.userID).SetChatID(tc.chatID).Save(ctx)
			dbErr := requireKind(t, err, database.ErrInvalidReference)
			code := requireDriverError(t, target, err)
			if target.Postgres() {
				require.Equal(t, "23503", code, tc.name)
				require.Equal(t, tc.pgConstraint, dbErr.Constraint, tc.name)
			} else {
				require.Equal(t, "787", code, tc.name) // SQLITE_CONSTRAINT_FOREIGNKEY
			}
		}
		require.Equal(t, 0, countRows(t, db, "memberships"))

		// Deleting a row still pointed at (chats.created_by is ON DELETE RESTRICT).
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			return tx.User.DeleteOneID(u.ID).Exec(ctx)
		})
		require.ErrorIs(t, err, database.ErrInvalidReference)
		requireDriverError(t, target, err)
		require.Equal(t, 1, countRows(t, db, "users"))
	})
}

// insertMessageSQL inserts a message with raw SQL, bypassing ent's validators.
func insertMessageSQL(ctx context.Context, db *database.DB, chatID uuid.UUID, content any) error {
	_, err := db.SQL().ExecContext(ctx,
		"INSERT INTO messages (id, chat_id, seq, role, content, created_at) VALUES ($1, $2, $3, 'user', $4, $5)",
		uuid.New(), chatID, rawSeq.Add(1), content, time.Now().UTC())
	return err
}

// rawSeq numbers the messages insertMessageSQL writes, each chat's seqs being
// unique.
var rawSeq atomic.Int64

// insertChatSQL inserts a chat with raw SQL, bypassing ent's validators.
func insertChatSQL(ctx context.Context, db *database.DB, createdBy uuid.UUID, title string) error {
	_, err := db.SQL().ExecContext(ctx,
		"INSERT INTO chats (id, created_at, updated_at, kind, title, last_message_at, created_by) VALUES ($1, $2, $2, 'group', $3, $2, $4)",
		uuid.New(), time.Now().UTC(), title, createdBy)
	return err
}

func TestErrCheck(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		u := newUser(t, db.Client())
		c := newChat(t, db.Client(), u)

		check := func(err error, constraint, pgCode, sqliteCode string) {
			t.Helper()
			dbErr := requireKind(t, err, database.ErrCheck)
			code := requireDriverError(t, target, err)
			if target.Postgres() {
				require.Equal(t, pgCode, code)
				require.Equal(t, constraint, dbErr.Constraint)
			} else {
				require.Equal(t, sqliteCode, code)
			}
		}
		// CHECK constraints: the database enforces the limits for writers that
		// bypass the Go validators.
		check(insertMessageSQL(ctx, db, c.ID, strings.Repeat("a", schema.MaxContentBytes+1)), "messages_content_length", "23514", "275")
		check(insertMessageSQL(ctx, db, c.ID, ""), "messages_content_length", "23514", "275")
		check(insertChatSQL(ctx, db, u.ID, strings.Repeat("t", schema.MaxTitleRunes+1)), "chats_title_length", "23514", "275")
		// A live message has content: NULL is for deleted ones only.
		check(insertMessageSQL(ctx, db, c.ID, nil), "messages_content_deleted", "23514", "275")
		// NOT NULL.
		_, err := db.SQL().ExecContext(ctx,
			"INSERT INTO chats (id, created_at, updated_at, last_message_at, created_by) VALUES ($1, $2, $2, $2, $3)",
			uuid.New(), time.Now().UTC(), u.ID)
		check(err, "", "23502", "1299")
		require.Equal(t, 0, countRows(t, db, "messages"))
		require.Equal(t, 1, countRows(t, db, "chats"))

		// The limits are the validators' limits: content in bytes, titles in
		// characters, on both databases.
		require.NoError(t, insertMessageSQL(ctx, db, c.ID, strings.Repeat("é", schema.MaxContentBytes/2)))
		require.NoError(t, insertChatSQL(ctx, db, u.ID, strings.Repeat("語", schema.MaxTitleRunes)))
		check(insertMessageSQL(ctx, db, c.ID, strings.Repeat("é", schema.MaxContentBytes/2)+"a"), "messages_content_length", "23514", "275")
	})
}

func TestErrTimeoutStatement(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target)
		start := time.Now()
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			if _, err := tx.ExecContext(ctx, "SET LOCAL statement_timeout = '50ms'"); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "SELECT pg_sleep(10)")
			return err
		})
		require.Less(t, time.Since(start), 5*time.Second)
		require.ErrorIs(t, err, database.ErrTimeout)
		require.Equal(t, "57014", requireDriverError(t, target, err)) // query_canceled
		// SET LOCAL ended with the transaction: the connection is as it was.
		var timeout string
		require.NoError(t, db.SQL().QueryRowContext(ctx, "SHOW statement_timeout").Scan(&timeout))
		require.Equal(t, "0", timeout)
	})
}

func TestErrTimeoutLock(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target)
		u := newUser(t, db.Client())

		locked, release := make(chan struct{}), make(chan struct{})
		holder := make(chan error, 1)
		go func() {
			holder <- db.WithTx(ctx, func(tx *ent.Tx) error {
				if _, err := tx.User.Query().Where(user.ID(u.ID)).ForUpdate().Only(ctx); err != nil {
					close(locked)
					return err
				}
				close(locked)
				<-release
				return nil
			})
		}()
		<-locked
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '50ms'"); err != nil {
				return err
			}
			return tx.User.UpdateOneID(u.ID).SetDisplayName("Renamed").Exec(ctx)
		})
		close(release)
		require.NoError(t, <-holder)
		require.ErrorIs(t, err, database.ErrTimeout)
		require.Equal(t, "55P03", requireDriverError(t, target, err)) // lock_not_available
		got, err := db.Client().User.Get(ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, u.DisplayName, got.DisplayName)
	})
}

func TestErrTimeoutContextDeadline(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		ctx, cancel := context.WithTimeout(viewer.SystemContext(t.Context()), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := db.SQL().ExecContext(ctx, "SELECT pg_sleep(10)")
		require.Less(t, time.Since(start), 5*time.Second)
		requireKind(t, err, database.ErrTimeout)
	})
}

// SQLite's busy timeout: a second writer waits for the file lock that long, then
// gets ErrTimeout.
func TestErrTimeoutSQLiteBusy(t *testing.T) {
	t.Parallel()
	ctx := viewer.SystemContext(t.Context())
	db := dbtest.Open(t, dbtest.SQLite, dbtest.WithConfig(func(c *database.Config) {
		c.SQLiteBusyTimeout = 100 * time.Millisecond
	}))
	locked, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- db.WithTx(ctx, func(tx *ent.Tx) error {
			// Transactions begin IMMEDIATE: this one holds the write lock
			// from its start to its commit.
			err := createUser(ctx, tx, "holder@example.com")
			close(locked)
			<-release
			return err
		})
	}()
	<-locked
	start := time.Now()
	err := db.WithTx(ctx, func(tx *ent.Tx) error {
		return createUser(ctx, tx, "waiter@example.com")
	})
	elapsed := time.Since(start)
	close(release)
	require.NoError(t, <-holder)
	// In this process the waiter queued behind the holder (sqlitegate.go) and
	// gave up after the busy timeout, with SQLITE_BUSY's code.
	require.ErrorIs(t, err, database.ErrTimeout)
	var de *database.Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, "5", de.Code)
	require.GreaterOrEqual(t, elapsed, 100*time.Millisecond)
	require.Less(t, elapsed, 5*time.Second)
	require.Equal(t, 1, countRows(t, db, "users"))
}

// A writer of another process (here: a pool that is not chatdb's) holds the
// file's lock: chatdb's writer meets it at SQLite's lock, waits the busy
// timeout there, and gets ErrTimeout with SQLite's own error.
func TestErrTimeoutSQLiteBusyOtherProcess(t *testing.T) {
	t.Parallel()
	ctx := viewer.SystemContext(t.Context())
	cfg := dbtest.Config(t, dbtest.SQLite)
	cfg.SQLiteBusyTimeout = 100 * time.Millisecond
	db, err := database.Open(ctx, cfg)
	require.NoError(t, err)
	defer db.Close()
	other, err := sql.Open("sqlite", cfg.URL)
	require.NoError(t, err)
	defer other.Close()
	otherTx, err := other.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = otherTx.ExecContext(ctx, "DELETE FROM users WHERE id IS NULL") // takes the write lock
	require.NoError(t, err)

	err = db.WithTx(ctx, func(tx *ent.Tx) error {
		return createUser(ctx, tx, "waiter@example.com")
	})
	require.NoError(t, otherTx.Rollback())
	require.ErrorIs(t, err, database.ErrTimeout)
	require.Equal(t, "5", requireDriverError(t, dbtest.SQLite, err)) // SQLITE_BUSY
	require.NoError(t, db.WithTx(ctx, func(tx *ent.Tx) error {
		return createUser(ctx, tx, "after@example.com")
	}))
}

// A deadlock (40P01) is a serialization failure: running again may succeed.
func TestErrDeadlock(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target)
		users := [2]*ent.User{newUser(t, db.Client()), newUser(t, db.Client())}
		var (
			first sync.WaitGroup // both hold their first lock
			wg    sync.WaitGroup
			errs  [2]error
		)
		first.Add(2)
		for i := range 2 {
			wg.Go(func() {
				var once sync.Once
				locked := func() { once.Do(first.Done) }
				defer locked()
				errs[i] = db.WithTx(ctx, func(tx *ent.Tx) error {
					if err := tx.User.UpdateOneID(users[i].ID).SetDisplayName(fmt.Sprint("first ", i)).Exec(ctx); err != nil {
						return err
					}
					locked()
					first.Wait()
					return tx.User.UpdateOneID(users[1-i].ID).SetDisplayName(fmt.Sprint("second ", i)).Exec(ctx)
				})
			})
		}
		wg.Wait()
		failed := 0
		for _, err := range errs {
			if err == nil {
				continue
			}
			failed++
			require.ErrorIs(t, err, database.ErrSerialization)
			require.Equal(t, "40P01", requireDriverError(t, target, err)) // deadlock_detected
		}
		require.Equal(t, 1, failed, "%v", errs)
	})
}

// A connection that breaks in the middle of a transaction is ErrBadConn.
func TestErrBadConn(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target)
		admin, err := database.Open(ctx, database.Config{URL: dbtest.AdminURL(t), MaxOpenConns: 1})
		require.NoError(t, err)
		t.Cleanup(func() { admin.Close() })
		err = db.WithTx(ctx, func(tx *ent.Tx) error {
			if err := createUser(ctx, tx, "lost@example.com"); err != nil {
				return err
			}
			rows, err := tx.QueryContext(ctx, "SELECT pg_backend_pid()")
			if err != nil {
				return err
			}
			var pid int
			for rows.Next() {
				if err := rows.Scan(&pid); err != nil {
					return err
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if _, err := admin.SQL().ExecContext(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
				return fmt.Errorf("terminate: %w", err)
			}
			time.Sleep(100 * time.Millisecond)
			_, err = tx.User.Query().Count(ctx)
			return err
		})
		require.Error(t, err)
		require.NotContains(t, err.Error(), "terminate:")
		require.ErrorIs(t, err, database.ErrBadConn)
		require.Equal(t, 0, countRows(t, db, "users"))
	})
}

// --- validation ---

// validationCase is one value a validator must reject before any SQL is sent.
type validationCase struct {
	name  string
	table string
	rule  error
	// leak is text from the rejected value that must not appear in the error.
	leak string
	// write tries the write; u and c are an existing user and chat.
	write func(ctx context.Context, client *ent.Client, u *ent.User, c *ent.Chat) error
}

func createUserWith(email, name string) func(context.Context, *ent.Client, *ent.User, *ent.Chat) error {
	return func(ctx context.Context, client *ent.Client, _ *ent.User, _ *ent.Chat) error {
		return client.User.Create().SetEmail(email).SetDisplayName(name).Exec(ctx)
	}
}

func createChatWith(title string) func(context.Context, *ent.Client, *ent.User, *ent.Chat) error {
	return func(ctx context.Context, client *ent.Client, u *ent.User, _ *ent.Chat) error {
		return client.Chat.Create().SetKind("group").SetTitle(title).SetCreatedBy(u.ID).Exec(ctx)
	}
}

func createMessageWith(content string, md *schematype.MessageMetadata) func(context.Context, *ent.Client, *ent.User, *ent.Chat) error {
	return func(ctx context.Context, client *ent.Client, u *ent.User, c *ent.Chat) error {
		_, err := appendMessage(ctx, client, func(mc *ent.MessageCreate) {
			mc.SetChatID(c.ID).SetSenderID(u.ID).SetRole(message.RoleUser).SetContent(content).SetNillableMetadata(md)
		})
		return err
	}
}

// appendMessage creates the message build sets up through client, in a
// transaction of its own when client is not one's, as the schema's sequence
// hook requires.
func appendMessage(ctx context.Context, client *ent.Client, build func(*ent.MessageCreate)) (*ent.Message, error) {
	mc := client.Message.Create()
	build(mc)
	m, err := mc.Save(ctx)
	if !errors.Is(err, schema.ErrNotInTx) {
		return m, err
	}
	tx, err := client.Tx(ctx)
	if err != nil {
		return nil, err
	}
	mc = tx.Message.Create()
	build(mc)
	m, err = mc.Save(ctx)
	if err != nil {
		return nil, errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return m.Unwrap(), nil
}

func validationCases() []validationCase {
	const secret = "topsecret"
	long := func(n int) string { return strings.Repeat(secret, n/len(secret)+1)[:n] }
	okEmail := func() string { return "ok-" + uuid.NewString() + "@example.com" }
	return []validationCase{
		// Message content.
		{"content empty", "messages", schema.ErrEmpty, "", createMessageWith("", nil)},
		{"content white space", "messages", schema.ErrEmpty, "", createMessageWith(" \t\n ", nil)},
		{"content too long", "messages", schema.ErrTooLong, secret, createMessageWith(long(schema.MaxContentBytes+1), nil)},
		{"content invalid UTF-8", "messages", schema.ErrInvalidUTF8, secret, createMessageWith(secret+"\xff", nil)},
		{"content NUL", "messages", schema.ErrNULByte, secret, createMessageWith(secret+"\x00", nil)},
		// Display name.
		{"display name empty", "users", schema.ErrEmpty, "", createUserWith(okEmail(), "")},
		{"display name white space", "users", schema.ErrEmpty, "", createUserWith(okEmail(), "   ")},
		{"display name too long", "users", schema.ErrTooLong, secret, createUserWith(okEmail(), long(schema.MaxDisplayNameRunes+1))},
		{"display name invalid UTF-8", "users", schema.ErrInvalidUTF8, secret, createUserWith(okEmail(), secret+"\xff")},
		{"display name NUL", "users", schema.ErrNULByte, secret, createUserWith(okEmail(), secret+"\x00")},
		// Chat title.
		{"title too long", "chats", schema.ErrTooLong, secret, createChatWith(long(schema.MaxTitleRunes + 1))},
		{"title invalid UTF-8", "chats", schema.ErrInvalidUTF8, secret, createChatWith(secret + "\xff")},
		{"title NUL", "chats", schema.ErrNULByte, secret, createChatWith(secret + "\x00")},
		// Email.
		{"email empty", "users", schema.ErrEmpty, "", createUserWith("", "A")},
		{"email white space", "users", schema.ErrEmpty, "", createUserWith("  ", "A")},
		{"email no at", "users", schema.ErrInvalidEmail, "no-at-" + secret, createUserWith("no-at-"+secret, "A")},
		{"email no dot", "users", schema.ErrInvalidEmail, secret + "@b", createUserWith(secret+"@b", "A")},
		{"email two ats", "users", schema.ErrInvalidEmail, secret + "@@b.c", createUserWith(secret+"@@b.c", "A")},
		{"email display name", "users", schema.ErrInvalidEmail, secret, createUserWith("A "+secret+" <a@b.c>", "A")},
		{"email trailing dot", "users", schema.ErrInvalidEmail, secret, createUserWith(secret+"@b.c.", "A")},
		{"email too long", "users", schema.ErrTooLong, secret, createUserWith(long(schema.MaxEmailBytes-len("@example.com")+1)+"@example.com", "A")},
		{"email invalid UTF-8", "users", schema.ErrInvalidUTF8, secret, createUserWith(secret+"\xff@example.com", "A")},
		{"email NUL", "users", schema.ErrNULByte, secret, createUserWith(secret+"\x00@example.com", "A")},
		// Metadata.
		{"metadata NUL in extra value", "messages", schema.ErrNULByte, secret,
			createMessageWith("hi", &schematype.MessageMetadata{Extra: map[string]any{"k": secret + "\x00"}})},
		{"metadata NUL in extra key", "messages", schema.ErrNULByte, secret,
			createMessageWith("hi", &schematype.MessageMetadata{Extra: map[string]any{secret + "\x00": 1}})},
		{"metadata NUL nested", "messages", schema.ErrNULByte, secret,
			createMessageWith("hi", &schematype.MessageMetadata{Extra: map[string]any{"a": []any{map[string]any{"b": secret + "\x00"}}}})},
		{"metadata NUL in typed extra value", "messages", schema.ErrNULByte, secret,
			createMessageWith("hi", &schematype.MessageMetadata{Extra: map[string]any{"tags": []string{"ok", secret + "\x00"}}})},
		{"metadata NUL in model", "messages", schema.ErrNULByte, secret,
			createMessageWith("hi", &schematype.MessageMetadata{Model: secret + "\x00"})},
		{"metadata invalid UTF-8 in attachment", "messages", schema.ErrInvalidUTF8, secret,
			createMessageWith("hi", &schematype.MessageMetadata{Attachments: []schematype.Attachment{{URL: "https://x", Name: secret + "\xff"}}})},
		{"metadata too large", "messages", schema.ErrTooLong, secret,
			createMessageWith("hi", &schematype.MessageMetadata{Extra: map[string]any{"big": long(schema.MaxMetadataBytes)}})},
		{"metadata nested too deep", "messages", schema.ErrInvalidJSON, "",
			createMessageWith("hi", &schematype.MessageMetadata{Extra: deepJSON(100)})},
		// Updates are validated as creates are.
		{"update content NUL", "messages", schema.ErrNULByte, secret,
			func(ctx context.Context, client *ent.Client, u *ent.User, c *ent.Chat) error {
				m, err := appendMessage(ctx, client, func(mc *ent.MessageCreate) {
					mc.SetChatID(c.ID).SetRole(message.RoleSystem).SetContent("original")
				})
				if err != nil {
					return err
				}
				defer client.Message.DeleteOne(m).Exec(ctx)
				return client.Message.UpdateOne(m).SetContent(secret + "\x00").Exec(ctx)
			}},
		{"update metadata NUL", "messages", schema.ErrNULByte, secret,
			func(ctx context.Context, client *ent.Client, u *ent.User, c *ent.Chat) error {
				m, err := appendMessage(ctx, client, func(mc *ent.MessageCreate) {
					mc.SetChatID(c.ID).SetRole(message.RoleSystem).SetContent("original")
				})
				if err != nil {
					return err
				}
				defer client.Message.DeleteOne(m).Exec(ctx)
				return client.Message.UpdateOne(m).SetMetadata(schematype.MessageMetadata{Model: secret + "\x00"}).Exec(ctx)
			}},
		{"update display name empty", "users", schema.ErrEmpty, "",
			func(ctx context.Context, client *ent.Client, u *ent.User, c *ent.Chat) error {
				return client.User.UpdateOne(u).SetDisplayName("").Exec(ctx)
			}},
		{"update email malformed", "users", schema.ErrInvalidEmail, secret,
			func(ctx context.Context, client *ent.Client, u *ent.User, c *ent.Chat) error {
				return client.User.UpdateOne(u).SetEmail(secret).Exec(ctx)
			}},
	}
}

func deepJSON(depth int) map[string]any {
	v := map[string]any{"leaf": true}
	for range depth {
		v = map[string]any{"n": v}
	}
	return v
}

func TestValidationRejects(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		u := newUser(t, db.Client())
		c := newChat(t, db.Client(), u)
		for _, tc := range validationCases() {
			t.Run(tc.name, func(t *testing.T) {
				before := countRows(t, db, tc.table)
				err := tc.write(ctx, db.Client(), u, c)
				require.Error(t, err)
				require.ErrorIs(t, err, tc.rule, "%v", err)
				require.ErrorIs(t, database.MapError(err), database.ErrInvalid)
				if tc.leak != "" {
					require.NotContains(t, err.Error(), tc.leak, "the error shows the rejected value")
				}
				require.Equal(t, before, countRows(t, db, tc.table), "something was written")

				// Through WithTx, the same error, nothing written.
				err = db.WithTx(ctx, func(tx *ent.Tx) error { return tc.write(ctx, tx.Client(), u, c) })
				require.ErrorIs(t, err, tc.rule)
				require.ErrorIs(t, err, database.ErrInvalid)
				require.Equal(t, before, countRows(t, db, tc.table))
			})
		}
		// The existing rows were left as they were.
		got, err := db.Client().User.Get(ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, u.Email, got.Email)
		require.Equal(t, u.DisplayName, got.DisplayName)
	})
}

// Values at the limits are accepted, and the database's own checks agree.
func TestValidationLimits(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		client := dbtest.Open(t, target).Client()
		u, err := client.User.Create().
			SetEmail(strings.Repeat("a", schema.MaxEmailBytes-len("@example.com")) + "@example.com").
			SetDisplayName(strings.Repeat("é", schema.MaxDisplayNameRunes)).
			Save(ctx)
		require.NoError(t, err)
		c, err := client.Chat.Create().SetKind("group").SetCreatedBy(u.ID).
			SetTitle(strings.Repeat("語", schema.MaxTitleRunes)).Save(ctx)
		require.NoError(t, err)
		_, err = client.Chat.Create().SetKind("direct").SetCreatedBy(u.ID).SetTitle("").Save(ctx)
		require.NoError(t, err, "a chat may have no title")
		content := strings.Repeat("é", schema.MaxContentBytes/2)
		md := schematype.MessageMetadata{
			Model:       "gpt-test",
			Attachments: []schematype.Attachment{{URL: "https://files.example.com/a.png", Name: "a.png", ContentType: "image/png", Size: 10}},
			Extra:       map[string]any{"unicode": "日本語 ✓", "nested": map[string]any{"list": []any{1.0, "two", nil}}},
		}
		m, err := appendMessage(ctx, client, func(mc *ent.MessageCreate) {
			mc.SetChatID(c.ID).SetSenderID(u.ID).SetRole(message.RoleUser).SetContent(content).SetMetadata(md)
		})
		require.NoError(t, err)
		got, err := client.Message.Get(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, content, got.Content)
		require.Equal(t, md, got.Metadata)
	})
}

func TestEmailNormalised(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		u, err := db.Client().User.Create().SetEmail("  Alice@Example.COM ").SetDisplayName("Alice").Save(ctx)
		require.NoError(t, err)
		require.Equal(t, "alice@example.com", u.Email)
		var stored string
		require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT email FROM users WHERE id = $1", u.ID).Scan(&stored))
		require.Equal(t, "alice@example.com", stored)

		// Updates are normalised too.
		require.NoError(t, db.Client().User.UpdateOne(u).SetEmail(" Bob@EXAMPLE.com").Exec(ctx))
		require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT email FROM users WHERE id = $1", u.ID).Scan(&stored))
		require.Equal(t, "bob@example.com", stored)
		n, err := db.Client().User.Query().Where(user.Email("bob@example.com")).Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}
