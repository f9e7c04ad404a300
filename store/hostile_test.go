package store_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	entmigrate "github.com/chatdb/chatdb/ent/migrate"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// Hostile input through every store entry point, on every target: each case
// gets a clear typed error (errors.Is against the store, database and schema
// sentinels), writes nothing (every row of every table is compared before and
// after), leaves the pool usable (a follow-up call succeeds), and its error
// text carries neither a message body nor a password hash.

// Values that must never be stored as text. PostgreSQL refuses both in text
// and jsonb; SQLite would store them: only validation in Go keeps the two
// databases alike.
const (
	nul     = "a\x00b"
	badUTF8 = "a\xff\xfeb"
	cutRune = "caf\xc3" // a multi-byte character cut short
)

// sqlish are strings that mean something to SQL, LIKE or the drivers; each
// must be stored and matched as the literal text it is.
var sqlish = []string{
	"'; DROP TABLE users; --",
	`Robert'); DROP TABLE messages;--`,
	`" OR "1"="1`,
	`' OR '1'='1`,
	`back\slash \\ \' \"`,
	"100% _sure_ [a-z]* ^$ .",
	"$1 ? :name @p1 %s %v",
	"/* comment */ -- comment",
	"E'\\x00' U&'\\0000'",
	"🙂 \u202e RTL \u200b zero-width",
	"line\nbreak\r\ttab",
}

// secrets appear in fixtures and must never appear in an error's text.
const (
	secretHash    = "$argon2id$v=19$m=65536,t=3,p=4$SECRET-HASH-DO-NOT-PRINT"
	secretContent = "SECRET MESSAGE BODY do not print"
)

// hostile is the cast: ada and bob share a direct chat and a group chat; eve is
// a member of neither and has chats of her own.
type hostile struct {
	*env
	ada, bob, eve      *store.User
	direct, group      *store.Chat
	eveChat            *store.Chat
	adaMsg, bobMsg     *store.Message
	eveMsg             *store.Message
	groupMsg           *store.Message
	directCur, eveCur  store.Cursor
	inboxCur           store.Cursor
	adaEmail, bobEmail string
}

func newHostile(t *testing.T, target dbtest.Target) *hostile {
	t.Helper()
	e := newEnv(t, target)
	h := &hostile{env: e}
	mk := func(name string) *store.User {
		u, err := e.s.CreateUser(e.sys(), store.NewUser{
			Email:        fmt.Sprintf("%s-%d@example.com", name, userSeq.Add(1)),
			DisplayName:  name,
			PasswordHash: secretHash,
		})
		require.NoError(t, err)
		return u
	}
	h.ada, h.bob, h.eve = mk("ada"), mk("bob"), mk("eve")
	h.adaEmail, h.bobEmail = h.ada.Email, h.bob.Email
	h.direct = e.direct(h.ada, h.bob)
	h.group = e.group(h.ada, h.bob)
	h.eveChat = e.group(h.eve)
	h.adaMsg = e.say(h.ada, h.direct, secretContent)
	h.bobMsg = e.say(h.bob, h.direct, "from bob")
	h.groupMsg = e.say(h.bob, h.group, secretContent+" in the group")
	h.eveMsg = e.say(h.eve, h.eveChat, "eve's own")
	h.directCur = store.CursorOf(h.bobMsg)
	h.eveCur = store.CursorOf(h.eveMsg)
	inbox, err := e.s.Inbox(e.as(h.ada), store.InboxQuery{})
	require.NoError(t, err)
	h.inboxCur = inbox[0].Cursor
	return h
}

// fingerprint returns every row of every table as text: two fingerprints are
// equal when nothing was written in between.
func (h *hostile) fingerprint() string {
	h.t.Helper()
	// Every table and column of the schema, so that a new one is covered.
	type table struct{ name, cols string }
	var tables []table
	for _, t := range entmigrate.Tables {
		cols := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			cols[i] = c.Name
		}
		tables = append(tables, table{t.Name, strings.Join(cols, ", ")})
	}
	var b strings.Builder
	for _, tb := range tables {
		var exprs []string
		for _, c := range strings.Split(tb.cols, ", ") {
			exprs = append(exprs, fmt.Sprintf("COALESCE(CAST(%s AS TEXT), '<null>')", c))
		}
		q := fmt.Sprintf("SELECT %s FROM %s ORDER BY 1", strings.Join(exprs, " || '|' || "), tb.name)
		rows, err := h.db.SQL().QueryContext(h.t.Context(), q)
		require.NoError(h.t, err)
		n := 0
		for rows.Next() {
			var s string
			require.NoError(h.t, rows.Scan(&s))
			b.WriteString(s)
			b.WriteByte('\n')
			n++
		}
		require.NoError(h.t, rows.Err())
		rows.Close()
		fmt.Fprintf(&b, "-- %s: %d rows\n", tb.name, n)
	}
	return b.String()
}

// refused runs call, which must fail with one of want and write nothing, and
// then checks that the store still works.
func (h *hostile) refused(t *testing.T, want []error, call func() error) error {
	t.Helper()
	before := h.fingerprint()
	err := call()
	requireOneOf(t, err, want...)
	for _, secret := range []string{secretHash, "SECRET-HASH", secretContent} {
		require.NotContains(t, err.Error(), secret, "the error leaks a secret")
	}
	require.Equal(t, before, h.fingerprint(), "nothing is written")
	h.followUp(t)
	return err
}

// refusedRule is refused for input that fails validation: database.ErrInvalid,
// wrapping the schema rule r.
func (h *hostile) refusedRule(t *testing.T, r error, call func() error) {
	t.Helper()
	err := h.refused(t, wantInvalid, call)
	require.ErrorIs(t, err, r, "the rule that failed")
}

// followUp checks that the pool is usable: a read and a write both succeed.
func (h *hostile) followUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(h.as(h.ada), 10*time.Second)
	defer cancel()
	_, err := h.s.GetChat(ctx, h.direct.ID)
	require.NoError(t, err, "the store works after the refusal")
	require.Zero(t, h.db.Stats().InUse, "no connection left in use")
}

// requireOneOf checks that err matches one of want and no store or database
// sentinel outside want.
func requireOneOf(t *testing.T, err error, want ...error) {
	t.Helper()
	require.Error(t, err)
	matched := false
	for _, w := range want {
		matched = matched || errors.Is(err, w)
	}
	require.True(t, matched, "want one of %v, got %v", want, err)
	for _, other := range append(kinds, database.ErrBadConn, database.ErrCommitUnknown, database.ErrPermission) {
		if errors.Is(err, other) {
			ok := false
			for _, w := range want {
				ok = ok || w == other
			}
			require.True(t, ok, "error %v is also %v", err, other)
		}
	}
}

var (
	wantInvalid   = []error{database.ErrInvalid}
	wantNotFound  = []error{database.ErrNotFound}
	wantDenied    = []error{store.ErrForbidden, database.ErrNotFound}
	wantBadCursor = []error{store.ErrInvalidCursor}
)

// requireSchemaRule checks that err is database.ErrInvalid wrapping schema rule r.
func requireSchemaRule(t *testing.T, err, r error) {
	t.Helper()
	require.ErrorIs(t, err, database.ErrInvalid)
	require.ErrorIs(t, err, r)
}

// badTexts are text values every text field refuses, with the rule each breaks.
var badTexts = []struct {
	name string
	s    string
	rule error
}{
	{"NUL", nul, schema.ErrNULByte},
	{"only NUL", "\x00", schema.ErrNULByte},
	{"invalid UTF-8", badUTF8, schema.ErrInvalidUTF8},
	{"cut rune", cutRune, schema.ErrInvalidUTF8},
	{"lone surrogate", "\xed\xa0\x80", schema.ErrInvalidUTF8},
}

func TestHostileUsers(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		h := newHostile(t, target)
		sys := h.sys()

		t.Run("bad text in every user field", func(t *testing.T) {
			for _, bt := range badTexts {
				for _, u := range []store.NewUser{
					{Email: "x" + bt.s + "@example.com", DisplayName: "x", PasswordHash: secretHash},
					{Email: fmt.Sprintf("ok-%d@example.com", userSeq.Add(1)), DisplayName: bt.s, PasswordHash: secretHash},
				} {
					h.refused(t, wantInvalid, func() error {
						_, err := h.s.CreateUser(sys, u)
						if err != nil {
							requireSchemaRule(t, err, bt.rule)
						}
						return err
					})
				}
				name, hash := bt.s, secretHash
				h.refused(t, wantInvalid, func() error {
					_, err := h.s.UpdateProfile(h.as(h.ada), h.ada.ID, store.ProfileUpdate{DisplayName: &name, PasswordHash: &hash})
					return err
				})
			}
		})

		t.Run("bad text in the password hash", func(t *testing.T) {
			for _, bt := range badTexts {
				u := store.NewUser{Email: fmt.Sprintf("hash-%d@example.com", userSeq.Add(1)), DisplayName: "x", PasswordHash: secretHash + bt.s}
				before := h.fingerprint()
				_, err := h.s.CreateUser(sys, u)
				require.ErrorIs(t, err, database.ErrInvalid, "%s in PasswordHash on %s", bt.name, target)
				requireSchemaRule(t, err, bt.rule)
				require.NotContains(t, err.Error(), "SECRET-HASH")
				require.Equal(t, before, h.fingerprint())
				hash := secretHash + bt.s
				h.refused(t, wantInvalid, func() error {
					_, err := h.s.UpdateProfile(h.as(h.ada), h.ada.ID, store.ProfileUpdate{PasswordHash: &hash})
					return err
				})
			}
		})

		t.Run("over the limits", func(t *testing.T) {
			long := strings.Repeat("語", schema.MaxDisplayNameRunes+1)
			h.refusedRule(t, schema.ErrTooLong, func() error {
				_, err := h.s.CreateUser(sys, store.NewUser{Email: fmt.Sprintf("long-%d@example.com", userSeq.Add(1)), DisplayName: long})
				return err
			})
			h.refusedRule(t, schema.ErrTooLong, func() error {
				_, err := h.s.UpdateProfile(h.as(h.ada), h.ada.ID, store.ProfileUpdate{DisplayName: &long})
				return err
			})
			email := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".com"
			h.refused(t, wantInvalid, func() error {
				_, err := h.s.CreateUser(sys, store.NewUser{Email: email, DisplayName: "x"})
				return err
			})
		})

		t.Run("malformed emails", func(t *testing.T) {
			for _, email := range []string{
				"", "   ", "no-at-sign", "a@b", "a@@b.com", "@example.com", "a@", "a@.com", "a@example.com.",
				"Ada <ada@example.com>", "<ada@example.com>", "ada@example.com, bob@example.com",
				"ada@exa mple.com", "'; DROP TABLE users; --", "%@%", "a%@example.com\x00",
			} {
				h.refused(t, wantInvalid, func() error {
					_, err := h.s.CreateUser(sys, store.NewUser{Email: email, DisplayName: "x"})
					return err
				})
			}
		})

		t.Run("taken email: conflict, without the hash", func(t *testing.T) {
			h.refused(t, []error{database.ErrConflict}, func() error {
				_, err := h.s.CreateUser(sys, store.NewUser{Email: strings.ToUpper(h.adaEmail), DisplayName: "x", PasswordHash: secretHash})
				return err
			})
		})

		t.Run("text no address can hold is not found", func(t *testing.T) {
			// PostgreSQL would refuse these with an error of its own (22021),
			// so they must be answered before any SQL.
			var bugs []string
			for _, probe := range []string{"ab@example.com\x00", "\x00", "\xff", "ab@example.com" + badUTF8, "ab@example.com" + cutRune} {
				u, err := h.s.UserByEmail(sys, probe)
				require.Nil(t, u)
				if !errorsIsAny(err, database.ErrNotFound, database.ErrInvalid) {
					bugs = append(bugs, fmt.Sprintf("%q: %v", probe, err))
				}
				h.followUp(t)
			}
			require.Empty(t, bugs, "UserByEmail gives unclassified errors on %s", target)
		})

		t.Run("metacharacters are stored and matched literally", func(t *testing.T) {
			// LIKE wildcards and quotes are valid in an address's local part.
			n := userSeq.Add(1)
			plain := fmt.Sprintf("ab%d@example.com", n)
			_, err := h.s.CreateUser(sys, store.NewUser{Email: plain, DisplayName: "plain"})
			require.NoError(t, err)
			for _, probe := range []string{
				fmt.Sprintf("a%%%d@example.com", n), fmt.Sprintf("a_%d@example.com", n), "%@example.com", "%",
				fmt.Sprintf("_b%d@example.com", n), fmt.Sprintf("AB%d@EXAMPLE.COM%%", n), "' OR '1'='1", "' OR 1=1 --",
				fmt.Sprintf("ab%d@example.com' --", n),
			} {
				u, err := h.s.UserByEmail(sys, probe)
				require.Nil(t, u, "%q matched %v", probe, u)
				requireOneOf(t, err, wantNotFound...)
			}
			for i, name := range sqlish {
				email := fmt.Sprintf("o'reilly%%_%d+%d@example.com", n, i)
				u, err := h.s.CreateUser(sys, store.NewUser{Email: email, DisplayName: name, PasswordHash: name})
				require.NoError(t, err, "%q", name)
				got, err := h.s.UserByEmail(sys, email)
				require.NoError(t, err)
				require.Equal(t, u.ID, got.ID)
				require.Equal(t, name, got.DisplayName)
				hash, err := h.s.PasswordHash(sys, u.ID)
				require.NoError(t, err)
				require.Equal(t, name, hash)
				_, err = h.s.UserByEmail(sys, strings.Replace(email, "%_", "xy", 1))
				requireOneOf(t, err, wantNotFound...)
				upd := name + " (updated)"
				got, err = h.s.UpdateProfile(h.as(u), u.ID, store.ProfileUpdate{DisplayName: &upd})
				require.NoError(t, err)
				require.Equal(t, upd, got.DisplayName)
			}
			h.followUp(t)
		})

		t.Run("malformed and foreign IDs", func(t *testing.T) {
			for _, id := range []uuid.UUID{uuid.Nil, uuid.New(), schema.NewID(), uuid.Max} {
				h.refused(t, wantNotFound, func() error { _, err := h.s.GetUser(h.as(h.ada), id); return err })
				h.refused(t, wantNotFound, func() error { return h.s.DeleteUser(sys, id) })
				name := "x"
				h.refused(t, wantNotFound, func() error {
					_, err := h.s.UpdateProfile(sys, id, store.ProfileUpdate{DisplayName: &name})
					return err
				})
			}
			// Another user's profile: readable, its hash not, not writable.
			_, err := h.s.GetUser(h.as(h.eve), h.ada.ID)
			require.NoError(t, err)
			_, err = h.s.UserByEmail(h.as(h.eve), h.adaEmail)
			require.NoError(t, err)
			_, err = h.s.PasswordHash(h.as(h.eve), h.ada.ID)
			requireKind(t, err, store.ErrForbidden)
			name := "pwned"
			h.refused(t, []error{store.ErrForbidden}, func() error {
				_, err := h.s.UpdateProfile(h.as(h.eve), h.ada.ID, store.ProfileUpdate{DisplayName: &name, PasswordHash: &name})
				return err
			})
			h.refused(t, []error{store.ErrForbidden}, func() error { return h.s.DeleteUser(h.as(h.eve), h.ada.ID) })
			h.refused(t, []error{store.ErrForbidden}, func() error {
				_, err := h.s.CreateUser(h.as(h.eve), store.NewUser{Email: "new@example.com", DisplayName: "x"})
				return err
			})
		})
	})
}

func TestHostileChats(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		h := newHostile(t, target)
		as := h.as(h.ada)

		t.Run("bad titles", func(t *testing.T) {
			titles := []struct {
				s    string
				rule error
			}{{strings.Repeat("é", schema.MaxTitleRunes+1), schema.ErrTooLong}}
			for _, bt := range badTexts {
				titles = append(titles, struct {
					s    string
					rule error
				}{bt.s, bt.rule})
			}
			for _, title := range titles {
				h.refusedRule(t, title.rule, func() error {
					_, err := h.s.CreateGroupChat(as, title.s, []uuid.UUID{h.bob.ID})
					return err
				})
				h.refusedRule(t, title.rule, func() error {
					_, err := h.s.CreateAssistantChat(as, title.s)
					return err
				})
			}
		})

		t.Run("metacharacters in titles are stored literally", func(t *testing.T) {
			for _, title := range sqlish {
				c, err := h.s.CreateGroupChat(as, title, []uuid.UUID{h.bob.ID})
				require.NoError(t, err)
				got, err := h.s.GetChat(h.as(h.bob), c.ID)
				require.NoError(t, err)
				require.Equal(t, title, got.Title)
			}
		})

		t.Run("malformed and unknown IDs", func(t *testing.T) {
			for _, id := range []uuid.UUID{uuid.Nil, uuid.New(), uuid.Max} {
				h.refused(t, wantNotFound, func() error { _, _, err := h.s.CreateDirectChat(as, id); return err })
				// The zero ID is refused before any SQL; another unknown ID once
				// the users are looked up.
				h.refused(t, []error{database.ErrNotFound, database.ErrInvalid}, func() error {
					_, err := h.s.CreateGroupChat(as, "g", []uuid.UUID{h.bob.ID, id})
					return err
				})
				h.refused(t, wantNotFound, func() error { _, err := h.s.GetChat(as, id); return err })
				h.refused(t, wantNotFound, func() error { _, err := h.s.Members(as, id); return err })
				h.refused(t, wantDenied, func() error { _, err := h.s.AddMember(as, id, h.eve.ID, ""); return err })
				h.refused(t, wantNotFound, func() error { _, err := h.s.AddMember(as, h.group.ID, id, ""); return err })
				h.refused(t, wantDenied, func() error { return h.s.RemoveMember(as, id, h.bob.ID) })
				h.refused(t, wantDenied, func() error { return h.s.RemoveMember(as, h.group.ID, id) })
				h.refused(t, wantDenied, func() error { _, err := h.s.SetRole(as, id, h.bob.ID, membership.RoleAdmin); return err })
				h.refused(t, wantDenied, func() error { _, err := h.s.SetRole(as, h.group.ID, id, membership.RoleAdmin); return err })
				h.refused(t, wantDenied, func() error { _, err := h.s.ArchiveChat(as, id); return err })
			}
			h.refused(t, wantInvalid, func() error { _, _, err := h.s.CreateDirectChat(as, h.ada.ID); return err })
		})

		t.Run("metacharacters as roles", func(t *testing.T) {
			for _, role := range append([]string{"Owner", "owner ", "owner\x00", "owner'; UPDATE memberships SET role='owner'; --"}, sqlish...) {
				h.refused(t, wantInvalid, func() error { _, err := h.s.AddMember(as, h.group.ID, h.eve.ID, membership.Role(role)); return err })
				h.refused(t, wantInvalid, func() error { _, err := h.s.SetRole(as, h.group.ID, h.bob.ID, membership.Role(role)); return err })
			}
		})

		t.Run("no viewer, a viewer of nobody, a deleted viewer", func(t *testing.T) {
			gone, err := h.s.CreateUser(h.sys(), store.NewUser{Email: fmt.Sprintf("gone-%d@example.com", userSeq.Add(1)), DisplayName: "gone"})
			require.NoError(t, err)
			require.NoError(t, h.s.DeleteUser(h.as(gone), gone.ID))
			for name, ctx := range map[string]context.Context{
				"no viewer":  t.Context(),
				"nil user":   viewer.NewContext(t.Context(), uuid.Nil),
				"nobody":     viewer.NewContext(t.Context(), uuid.New()),
				"deleted":    viewer.NewContext(t.Context(), gone.ID),
				"eve's chat": viewer.NewContext(t.Context(), h.eveChat.ID), // a chat's ID as a user's
			} {
				t.Run(name, func(t *testing.T) {
					h.refused(t, wantDenied, func() error { _, err := h.s.GetChat(ctx, h.direct.ID); return err })
					h.refused(t, wantDenied, func() error { _, err := h.s.Members(ctx, h.group.ID); return err })
					h.refused(t, wantDenied, func() error {
						page, err := h.s.History(ctx, h.direct.ID, store.HistoryQuery{})
						require.Nil(t, page)
						return err
					})
					h.refused(t, wantDenied, func() error {
						_, err := h.s.AppendMessage(ctx, store.NewMessage{ChatID: h.direct.ID, Content: secretContent})
						return err
					})
					h.refused(t, wantDenied, func() error {
						_, err := h.s.AppendMessage(ctx, store.NewMessage{ChatID: h.direct.ID, Content: "x", SenderID: h.ada.ID})
						return err
					})
					h.refused(t, wantDenied, func() error {
						_, err := h.s.ImportMessages(ctx, h.direct.ID, []store.NewMessage{{Content: "x", SenderID: h.ada.ID}})
						return err
					})
					h.refused(t, wantDenied, func() error { _, err := h.s.EditMessage(ctx, h.adaMsg.ID, "x"); return err })
					h.refused(t, wantDenied, func() error { return h.s.DeleteMessage(ctx, h.adaMsg.ID) })
					h.refused(t, wantDenied, func() error { return h.s.MarkRead(ctx, h.direct.ID, h.bobMsg.ID) })
					h.refused(t, wantDenied, func() error { _, err := h.s.AddMember(ctx, h.group.ID, h.eve.ID, ""); return err })
					h.refused(t, wantDenied, func() error { return h.s.RemoveMember(ctx, h.group.ID, h.bob.ID) })
					h.refused(t, wantDenied, func() error { _, err := h.s.SetRole(ctx, h.group.ID, h.bob.ID, membership.RoleOwner); return err })
					h.refused(t, wantDenied, func() error { _, err := h.s.ArchiveChat(ctx, h.group.ID); return err })
					// A user that does not exist creates nothing: the foreign key
					// on created_by refuses it.
					// (A deleted user's leftover session may still create chats:
					// the policies do not forbid it, so it is not checked here.)
					if name != "deleted" {
						created := append([]error{database.ErrInvalidReference}, wantDenied...)
						h.refused(t, created, func() error { _, err := h.s.CreateGroupChat(ctx, "g", []uuid.UUID{h.ada.ID}); return err })
						h.refused(t, created, func() error { _, _, err := h.s.CreateDirectChat(ctx, h.ada.ID); return err })
					}
					entries, err := h.s.Inbox(ctx, store.InboxQuery{})
					if err == nil {
						require.Empty(t, entries, "an inbox of nobody's chats")
					} else {
						requireOneOf(t, err, wantDenied...)
					}
					if name == "no viewer" {
						h.refused(t, wantDenied, func() error { _, err := h.s.GetUser(ctx, h.ada.ID); return err })
						h.refused(t, wantDenied, func() error { _, err := h.s.UserByEmail(ctx, h.adaEmail); return err })
					} else {
						_, err := h.s.PasswordHash(ctx, h.ada.ID)
						requireOneOf(t, err, wantDenied...)
					}
				})
			}
			// The system viewer is no member of anything: the user operations
			// that act as a member refuse it.
			sys := h.sys()
			h.refused(t, []error{store.ErrForbidden}, func() error { _, err := h.s.Inbox(sys, store.InboxQuery{}); return err })
			h.refused(t, []error{store.ErrForbidden}, func() error { return h.s.MarkRead(sys, h.direct.ID, h.bobMsg.ID) })
		})

		t.Run("eve cannot touch ada's chats", func(t *testing.T) {
			eve := h.as(h.eve)
			for _, c := range []*store.Chat{h.direct, h.group} {
				h.refused(t, wantNotFound, func() error { _, err := h.s.GetChat(eve, c.ID); return err })
				h.refused(t, wantNotFound, func() error { _, err := h.s.Members(eve, c.ID); return err })
				h.refused(t, wantDenied, func() error { _, err := h.s.AddMember(eve, c.ID, h.eve.ID, membership.RoleOwner); return err })
				h.refused(t, wantDenied, func() error { _, err := h.s.AddMember(eve, c.ID, h.eve.ID, ""); return err })
				h.refused(t, wantDenied, func() error { return h.s.RemoveMember(eve, c.ID, h.bob.ID) })
				h.refused(t, wantDenied, func() error { return h.s.RemoveMember(eve, c.ID, h.ada.ID) })
				h.refused(t, wantDenied, func() error { _, err := h.s.SetRole(eve, c.ID, h.bob.ID, membership.RoleMember); return err })
				h.refused(t, wantDenied, func() error { _, err := h.s.SetRole(eve, c.ID, h.eve.ID, membership.RoleOwner); return err })
				h.refused(t, wantDenied, func() error { _, err := h.s.ArchiveChat(eve, c.ID); return err })
			}
			// A member of a group may not add to a direct chat they are not in,
			// nor bring eve into one they are in.
			h.refused(t, wantDenied, func() error { _, err := h.s.AddMember(as, h.direct.ID, h.eve.ID, ""); return err })
			inbox, err := h.s.Inbox(eve, store.InboxQuery{Limit: 200})
			require.NoError(t, err)
			for _, e := range inbox {
				require.NotEqual(t, h.direct.ID, e.Chat.ID, "eve's inbox lists ada's direct chat")
				require.NotEqual(t, h.group.ID, e.Chat.ID, "eve's inbox lists ada's group")
			}
			require.Len(t, inbox, 1)
		})
	})
}

func TestHostileMessages(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		h := newHostile(t, target)
		as := h.as(h.ada)
		c := h.direct.ID
		msg := func(mod func(*store.NewMessage)) store.NewMessage {
			m := store.NewMessage{ChatID: c, Content: secretContent}
			mod(&m)
			return m
		}

		t.Run("bad text in every message field", func(t *testing.T) {
			for _, bt := range badTexts {
				cases := map[string]store.NewMessage{
					"content":          msg(func(m *store.NewMessage) { m.Content = secretContent + bt.s }),
					"model":            msg(func(m *store.NewMessage) { m.Metadata.Model = bt.s }),
					"extra key":        msg(func(m *store.NewMessage) { m.Metadata.Extra = map[string]any{bt.s: 1} }),
					"extra value":      msg(func(m *store.NewMessage) { m.Metadata.Extra = map[string]any{"k": bt.s} }),
					"nested extra":     msg(func(m *store.NewMessage) { m.Metadata.Extra = map[string]any{"k": []any{map[string]any{"j": bt.s}}} }),
					"nested extra key": msg(func(m *store.NewMessage) { m.Metadata.Extra = map[string]any{"k": map[string]any{bt.s: true}} }),
					"typed extra":      msg(func(m *store.NewMessage) { m.Metadata.Extra = map[string]any{"k": []string{"ok", bt.s}} }),
					"attachment url":   msg(func(m *store.NewMessage) { m.Metadata.Attachments = []schematype.Attachment{{URL: bt.s}} }),
					"attachment name": msg(func(m *store.NewMessage) {
						m.Metadata.Attachments = []schematype.Attachment{{URL: "https://x", Name: bt.s}}
					}),
					"attachment type": msg(func(m *store.NewMessage) {
						m.Metadata.Attachments = []schematype.Attachment{{URL: "https://x", ContentType: bt.s}}
					}),
				}
				for field, m := range cases {
					t.Run(bt.name+" in "+field, func(t *testing.T) {
						wantRule := bt.rule
						if strings.Contains(field, "typed") && bt.rule == schema.ErrInvalidUTF8 {
							_, err := h.s.AppendMessage(as, m)
							require.Error(t, err, "invalid UTF-8 in a typed extra value must be refused, not stored as U+FFFD")
							requireSchemaRule(t, err, wantRule)
							return
						}
						h.refusedRule(t, wantRule, func() error { _, err := h.s.AppendMessage(as, m); return err })
						h.refusedRule(t, wantRule, func() error {
							_, err := h.s.ImportMessages(h.sys(), c, []store.NewMessage{{Content: "fine"}, m})
							return err
						})
					})
				}
				content := secretContent + bt.s
				h.refusedRule(t, bt.rule, func() error { _, err := h.s.EditMessage(as, h.adaMsg.ID, content); return err })
			}
		})

		t.Run("over the limits", func(t *testing.T) {
			big := strings.Repeat(secretContent, schema.MaxContentBytes/len(secretContent)+1)
			for name, m := range map[string]store.NewMessage{
				"content":    msg(func(m *store.NewMessage) { m.Content = big }),
				"content +1": msg(func(m *store.NewMessage) { m.Content = strings.Repeat("a", schema.MaxContentBytes+1) }),
				"metadata": msg(func(m *store.NewMessage) {
					m.Metadata.Extra = map[string]any{"k": strings.Repeat("x", schema.MaxMetadataBytes)}
				}),
				"model": msg(func(m *store.NewMessage) { m.Metadata.Model = strings.Repeat("m", schema.MaxMetadataBytes) }),
				"attachments": msg(func(m *store.NewMessage) {
					m.Metadata.Attachments = make([]schematype.Attachment, schema.MaxMetadataBytes/8)
				}),
				"empty content": msg(func(m *store.NewMessage) { m.Content = " \t\n" }),
			} {
				t.Run(name, func(t *testing.T) {
					want := schema.ErrTooLong
					if name == "empty content" {
						want = schema.ErrEmpty
					}
					h.refusedRule(t, want, func() error { _, err := h.s.AppendMessage(as, m); return err })
					h.refusedRule(t, want, func() error { _, err := h.s.ImportMessages(h.sys(), c, []store.NewMessage{m}); return err })
				})
			}
			h.refusedRule(t, schema.ErrTooLong, func() error { _, err := h.s.EditMessage(as, h.adaMsg.ID, big); return err })
			deep := any("leaf")
			for range 40 {
				deep = []any{deep}
			}
			h.refusedRule(t, schema.ErrInvalidJSON, func() error {
				_, err := h.s.AppendMessage(as, msg(func(m *store.NewMessage) { m.Metadata.Extra = map[string]any{"deep": deep} }))
				return err
			})
			// Exactly at the content limit is fine.
			_, err := h.s.AppendMessage(as, store.NewMessage{ChatID: c, Content: strings.Repeat("a", schema.MaxContentBytes)})
			require.NoError(t, err)
		})

		t.Run("malformed and unknown IDs", func(t *testing.T) {
			for _, id := range []uuid.UUID{uuid.Nil, uuid.New(), uuid.Max} {
				h.refused(t, wantNotFound, func() error {
					_, err := h.s.AppendMessage(as, store.NewMessage{ChatID: id, Content: "x"})
					return err
				})
				if id != uuid.Nil { // zero ReplyTo and SenderID mean "none" and "the viewer"
					h.refused(t, []error{database.ErrInvalidReference}, func() error {
						_, err := h.s.AppendMessage(as, store.NewMessage{ChatID: c, Content: "x", ReplyTo: id})
						return err
					})
					h.refused(t, wantDenied, func() error {
						_, err := h.s.AppendMessage(as, store.NewMessage{ChatID: c, Content: "x", SenderID: id})
						return err
					})
				}
				h.refused(t, wantNotFound, func() error { _, err := h.s.EditMessage(as, id, "x"); return err })
				h.refused(t, wantNotFound, func() error { return h.s.DeleteMessage(as, id) })
				h.refused(t, wantNotFound, func() error { return h.s.MarkRead(as, c, id) })
				h.refused(t, wantNotFound, func() error { return h.s.MarkRead(as, id, h.adaMsg.ID) })
				h.refused(t, wantNotFound, func() error { _, err := h.s.History(as, id, store.HistoryQuery{}); return err })
				h.refused(t, wantDenied, func() error {
					_, err := h.s.ImportMessages(h.sys(), id, []store.NewMessage{{Content: "x"}})
					return err
				})
			}
			// A message of another chat is not a message of this one.
			h.refused(t, wantNotFound, func() error { return h.s.MarkRead(as, c, h.groupMsg.ID) })
			// An ID taken by a message in a chat ada cannot see: a conflict, and
			// eve's message is left as it was.
			h.refused(t, []error{database.ErrConflict}, func() error {
				_, err := h.s.AppendMessage(as, store.NewMessage{ID: h.eveMsg.ID, ChatID: c, Content: "x"})
				return err
			})
			// The same ID with other content is a conflict, not an overwrite.
			h.refused(t, []error{database.ErrConflict}, func() error {
				_, err := h.s.AppendMessage(as, store.NewMessage{ID: h.adaMsg.ID, ChatID: c, Content: "rewritten"})
				return err
			})
			h.refused(t, []error{database.ErrConflict, database.ErrInvalid}, func() error {
				_, err := h.s.ImportMessages(h.sys(), c, []store.NewMessage{{ID: h.adaMsg.ID, Content: "rewritten"}})
				return err
			})
		})

		t.Run("metacharacters are stored literally", func(t *testing.T) {
			var sent []*store.Message
			for _, s := range sqlish {
				m, err := h.s.AppendMessage(as, store.NewMessage{ChatID: c, Content: s, Metadata: schematype.MessageMetadata{
					Model:       s,
					Extra:       map[string]any{s: s, "list": []any{s, "%", "_"}},
					Attachments: []schematype.Attachment{{URL: "https://x/" + s, Name: s, ContentType: s}},
				}})
				require.NoError(t, err)
				sent = append(sent, m)
			}
			n, err := h.s.ImportMessages(h.sys(), c, []store.NewMessage{{Content: sqlish[0]}, {Content: sqlish[4]}})
			require.NoError(t, err)
			require.Equal(t, 2, n)
			edited, err := h.s.EditMessage(as, sent[0].ID, sqlish[1]+" edited")
			require.NoError(t, err)
			require.Equal(t, sqlish[1]+" edited", edited.Content)
			byID := map[uuid.UUID]*store.Message{}
			for _, m := range h.history(h.bob, h.direct) {
				byID[m.ID] = m
			}
			for i, m := range sent[1:] {
				got := byID[m.ID]
				require.NotNil(t, got)
				s := sqlish[i+1]
				require.Equal(t, s, got.Content)
				require.Equal(t, s, got.Metadata.Model)
				require.Equal(t, s, got.Metadata.Extra[s])
				require.Equal(t, []any{s, "%", "_"}, got.Metadata.Extra["list"])
				require.Equal(t, s, got.Metadata.Attachments[0].Name)
			}
			h.followUp(t)
		})

		t.Run("eve cannot read or write ada's chats", func(t *testing.T) {
			eve := h.as(h.eve)
			for _, ch := range []*store.Chat{h.direct, h.group} {
				for _, q := range []store.HistoryQuery{{}, {Before: h.directCur}, {After: h.directCur}, {Order: store.OldestFirst, Limit: 1000}} {
					// The direct chat's cursor on the group is a cursor of
					// another chat; otherwise the chat is not found.
					h.refused(t, []error{database.ErrNotFound, store.ErrInvalidCursor}, func() error {
						page, err := h.s.History(eve, ch.ID, q)
						require.Nil(t, page)
						return err
					})
				}
				for _, m := range []store.NewMessage{
					{ChatID: ch.ID, Content: secretContent},
					{ChatID: ch.ID, Content: "as ada", SenderID: h.ada.ID},
					{ChatID: ch.ID, Content: "as the assistant", Role: message.RoleAssistant},
					{ChatID: ch.ID, Content: "as the system", Role: message.RoleSystem},
					{ChatID: ch.ID, Content: "reply", ReplyTo: h.adaMsg.ID},
				} {
					h.refused(t, wantDenied, func() error { _, err := h.s.AppendMessage(eve, m); return err })
				}
				h.refused(t, wantDenied, func() error {
					_, err := h.s.ImportMessages(eve, ch.ID, []store.NewMessage{{Content: "imported"}, {Content: "as ada", SenderID: h.ada.ID}})
					return err
				})
				h.refused(t, wantDenied, func() error {
					_, err := h.s.ImportMessages(eve, ch.ID, []store.NewMessage{{Content: "backdated", CreatedAt: time.Unix(0, 0)}})
					return err
				})
				h.refused(t, wantDenied, func() error { return h.s.MarkRead(eve, ch.ID, h.adaMsg.ID) })
			}
			for _, m := range []*store.Message{h.adaMsg, h.bobMsg, h.groupMsg} {
				h.refused(t, wantDenied, func() error { _, err := h.s.EditMessage(eve, m.ID, "pwned"); return err })
				h.refused(t, wantDenied, func() error { return h.s.DeleteMessage(eve, m.ID) })
				// Eve's own chat, someone else's message: no cross-chat read mark.
				h.refused(t, wantDenied, func() error { return h.s.MarkRead(eve, h.eveChat.ID, m.ID) })
			}
			// Eve replies in her own chat to ada's message: not in this chat.
			h.refused(t, []error{database.ErrInvalidReference}, func() error {
				_, err := h.s.AppendMessage(eve, store.NewMessage{ChatID: h.eveChat.ID, Content: "x", ReplyTo: h.adaMsg.ID})
				return err
			})
			// Bob edits ada's message in a chat he is in: only the sender edits.
			h.refused(t, []error{store.ErrForbidden}, func() error { _, err := h.s.EditMessage(h.as(h.bob), h.adaMsg.ID, "pwned"); return err })
			// A message moved between chats by an import is not possible either.
			h.refused(t, []error{store.ErrForbidden, database.ErrNotFound, database.ErrInvalid}, func() error {
				_, err := h.s.ImportMessages(eve, h.eveChat.ID, []store.NewMessage{{ChatID: h.direct.ID, Content: "smuggled"}})
				return err
			})
		})
	})
}

// forgeCursor returns a cursor of format kind at (at, id) with a valid checksum:
// what an attacker who read the format can make.
func forgeCursor(kind byte, at int64, id uuid.UUID) store.Cursor {
	b := []byte{kind}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return store.Cursor(base64.RawURLEncoding.EncodeToString(b))
}

func TestHostileCursors(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		h := newHostile(t, target)
		as := h.as(h.ada)
		before := h.fingerprint()
		good := h.directCur
		raw, err := base64.RawURLEncoding.DecodeString(string(good))
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(6, 6))

		bad := map[string]store.Cursor{
			"garbage":     "not a cursor!",
			"spaces":      "   ",
			"NUL":         "\x00",
			"invalid UTF": "\xff\xfe",
			"SQL":         "'; DROP TABLE messages; --",
			"percent":     "%",
			"std base64":  store.Cursor(base64.StdEncoding.EncodeToString(raw)),
			"url padded":  store.Cursor(base64.URLEncoding.EncodeToString(raw)),
			"doubled":     good + good,
			"empty bytes": store.Cursor(base64.RawURLEncoding.EncodeToString(nil) + "="),
			"inbox":       h.inboxCur,
			"huge":        store.Cursor(strings.Repeat("A", 1<<20)),
			"version 0":   forgeCursor(0, time.Now().UnixMicro(), h.adaMsg.ID),
			"version 1":   forgeCursor(1, time.Now().UnixMicro(), h.adaMsg.ID), // history by time, before seqs
			"version 4":   forgeCursor(4, 1, h.direct.ID),
			"version 255": forgeCursor(255, time.Now().UnixMicro(), h.adaMsg.ID),
		}
		for i := 0; i < len(good); i++ {
			bad[fmt.Sprintf("truncated to %d", i)] = good[:i]
		}
		for i := range raw {
			for bit := range 8 {
				b := append([]byte(nil), raw...)
				b[i] ^= 1 << bit
				bad[fmt.Sprintf("bit %d.%d flipped", i, bit)] = store.Cursor(base64.RawURLEncoding.EncodeToString(b))
			}
		}
		for i := range 64 {
			b := make([]byte, 1+rng.IntN(63))
			for j := range b {
				b[j] = byte(rng.UintN(256))
			}
			bad[fmt.Sprintf("random %d", i)] = store.Cursor(base64.RawURLEncoding.EncodeToString(b))
			bad[fmt.Sprintf("random raw %d", i)] = store.Cursor(b)
		}
		delete(bad, "truncated to 0") // the zero cursor means "from the start"
		for name, cur := range bad {
			for _, q := range []store.HistoryQuery{{Before: cur}, {After: cur}, {Before: good, After: cur}, {Before: cur, Order: store.OldestFirst}} {
				page, err := h.s.History(as, h.direct.ID, q)
				require.Nil(t, page, name)
				requireOneOf(t, err, wantBadCursor...)
				require.NotContains(t, err.Error(), string(cur[:min(len(cur), 64)]), "%s: the error repeats the cursor", name)
			}
			if name == "inbox" {
				continue
			}
			entries, err := h.s.Inbox(as, store.InboxQuery{Before: cur})
			require.Nil(t, entries, name)
			requireOneOf(t, err, wantBadCursor...)
		}
		// Forged inbox cursors list ada's chats only.
		for _, at := range []int64{0, time.Now().Add(time.Hour).UnixMicro(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()} {
			for _, id := range []uuid.UUID{uuid.Nil, uuid.Max, h.eveChat.ID} {
				entries, err := h.s.Inbox(as, store.InboxQuery{Before: forgeCursor(2, at, id)})
				require.NoError(t, err)
				if at > time.Now().UnixMicro() {
					require.NotEmpty(t, entries, "a cursor past now lists ada's chats")
				}
				for _, e := range entries {
					require.NotEqual(t, h.eveChat.ID, e.Chat.ID, "eve's chat leaked into ada's inbox")
				}
			}
		}
		// A history cursor is no inbox cursor.
		_, err = h.s.Inbox(as, store.InboxQuery{Before: good})
		requireOneOf(t, err, wantBadCursor...)

		// A history cursor names its chat: one of another chat, well formed or
		// forged, is refused, and never pages another chat's messages.
		own := map[uuid.UUID]bool{}
		for _, m := range h.history(h.ada, h.direct) {
			own[m.ID] = true
		}
		for _, cur := range map[string]store.Cursor{
			"eve's chat":  h.eveCur,
			"the group":   store.CursorOf(h.groupMsg),
			"random chat": forgeCursor(3, 1, uuid.New()),
			"zero chat":   forgeCursor(3, 1, uuid.Nil),
		} {
			for _, q := range []store.HistoryQuery{{Before: cur}, {After: cur}, {Before: cur, Order: store.OldestFirst}} {
				_, err := h.s.History(as, h.direct.ID, q)
				requireOneOf(t, err, wantBadCursor...)
			}
		}
		// Forged seqs of the chat itself give a page of it, or nothing.
		seen := 0
		for name, cur := range map[string]store.Cursor{
			"seq 0":   forgeCursor(3, 0, h.direct.ID),
			"seq 1":   forgeCursor(3, 1, h.direct.ID),
			"far":     forgeCursor(3, 1<<40, h.direct.ID),
			"max seq": forgeCursor(3, math.MaxInt64, h.direct.ID),
		} {
			for _, q := range []store.HistoryQuery{{Before: cur}, {After: cur}, {Before: cur, Order: store.OldestFirst}} {
				page, err := h.s.History(as, h.direct.ID, q)
				require.NoError(t, err, name)
				seen += len(page.Messages)
				for _, m := range page.Messages {
					require.True(t, own[m.ID], "%s: a message of another chat leaked", name)
				}
			}
			// Eve with a cursor of ada's chat on it: still not found.
			_, err := h.s.History(h.as(h.eve), h.direct.ID, store.HistoryQuery{Before: cur})
			requireOneOf(t, err, wantNotFound...)
		}
		require.Positive(t, seen, "forged seqs still page through ada's own messages")
		_, err = h.s.History(h.as(h.eve), h.direct.ID, store.HistoryQuery{After: good})
		requireOneOf(t, err, wantNotFound...)
		_, err = h.s.History(h.as(h.eve), h.eveChat.ID, store.HistoryQuery{Before: good})
		requireOneOf(t, err, wantBadCursor...)
		require.Equal(t, before, h.fingerprint(), "reads write nothing")
		h.followUp(t)

		t.Run("times no database holds", func(t *testing.T) {
			// A cursor names microseconds since 1970 in an int64: far more than
			// PostgreSQL's timestamps hold (4713 BC to 294276 AD). Such a cursor
			// is forged; it must be refused as one (or give an empty page).
			var bugs []string
			for name, at := range map[string]int64{
				"before 4713 BC": -300_000_000_000_000_000,
				"max int64":      math.MaxInt64,
				"min int64":      math.MinInt64,
				"-1":             -1,
			} {
				cur := forgeCursor(3, at, h.direct.ID)
				for _, q := range []store.HistoryQuery{{Before: cur}, {After: cur}} {
					page, err := h.s.History(as, h.direct.ID, q)
					switch {
					case err == nil:
						for _, m := range page.Messages {
							require.True(t, own[m.ID], "%s: a message of another chat leaked", name)
						}
					case !errors.Is(err, store.ErrInvalidCursor):
						bugs = append(bugs, fmt.Sprintf("%s: %v", name, err))
					}
					h.followUp(t)
				}
				entries, err := h.s.Inbox(as, store.InboxQuery{Before: forgeCursor(2, at, uuid.Nil)})
				switch {
				case err == nil:
					for _, e := range entries {
						require.NotEqual(t, h.eveChat.ID, e.Chat.ID, "%s: eve's chat leaked into ada's inbox", name)
					}
				case !errors.Is(err, store.ErrInvalidCursor):
					bugs = append(bugs, fmt.Sprintf("inbox, %s: %v", name, err))
				}
				h.followUp(t)
			}
			require.Equal(t, before, h.fingerprint())
			require.Empty(t, bugs, "forged cursors with out-of-range times on %s", target)
		})
	})
}
