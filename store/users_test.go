package store_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/store"
)

func TestCreateUser(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		u, err := e.s.CreateUser(e.sys(), store.NewUser{Email: "  Ada@Example.COM ", DisplayName: "Ada", PasswordHash: "$argon2id$x"})
		require.NoError(t, err)
		require.Equal(t, "ada@example.com", u.Email)
		require.Equal(t, "Ada", u.DisplayName)
		require.NotEqual(t, uuid.Nil, u.ID)

		_, err = e.s.CreateUser(e.sys(), store.NewUser{Email: "ADA@example.com", DisplayName: "Other Ada"})
		requireKind(t, err, database.ErrConflict)

		_, err = e.s.CreateUser(e.sys(), store.NewUser{Email: "not-an-address", DisplayName: "X"})
		requireKind(t, err, database.ErrInvalid)
		require.ErrorIs(t, err, schema.ErrInvalidEmail)
		_, err = e.s.CreateUser(e.sys(), store.NewUser{Email: "x@example.com", DisplayName: " "})
		requireKind(t, err, database.ErrInvalid)
	})
}

func TestGetUserAndByEmail(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		u, err := e.s.CreateUser(e.sys(), store.NewUser{Email: "bob@example.com", DisplayName: "Bob", PasswordHash: "hash"})
		require.NoError(t, err)
		other := e.user("carol")

		got, err := e.s.GetUser(e.as(other), u.ID)
		require.NoError(t, err)
		require.Equal(t, "Bob", got.DisplayName)
		_, err = e.s.PasswordHash(e.as(other), u.ID)
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.PasswordHash(e.as(u), u.ID)
		requireKind(t, err, store.ErrForbidden) // a user never reads a password hash, not even their own

		got, err = e.s.UserByEmail(e.as(other), " BOB@example.com")
		require.NoError(t, err)
		require.Equal(t, u.ID, got.ID)

		// Signing in: the system reads the hash.
		got, err = e.s.UserByEmail(e.sys(), "bob@example.com")
		require.NoError(t, err)
		hash, err := e.s.PasswordHash(e.sys(), got.ID)
		require.NoError(t, err)
		require.Equal(t, "hash", hash)
		_, err = e.s.PasswordHash(e.sys(), other.ID)
		requireKind(t, err, database.ErrNotFound) // no hash: signs in elsewhere

		_, err = e.s.GetUser(e.as(other), uuid.New())
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.UserByEmail(e.as(other), "nobody@example.com")
		requireKind(t, err, database.ErrNotFound)
	})
}

func TestUpdateProfile(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		name := "Ada Lovelace"
		got, err := e.s.UpdateProfile(e.as(ada), ada.ID, store.ProfileUpdate{DisplayName: &name})
		require.NoError(t, err)
		require.Equal(t, name, got.DisplayName)
		require.False(t, got.UpdatedAt.Before(ada.UpdatedAt))

		bad := "bad \xff"
		_, err = e.s.UpdateProfile(e.as(ada), ada.ID, store.ProfileUpdate{DisplayName: &bad})
		requireKind(t, err, database.ErrInvalid)

		// Another user's profile: forbidden, and unchanged.
		_, err = e.s.UpdateProfile(e.as(bob), ada.ID, store.ProfileUpdate{DisplayName: &bad})
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.UpdateProfile(e.t.Context(), ada.ID, store.ProfileUpdate{DisplayName: &name})
		requireKind(t, err, store.ErrForbidden)

		// The system may.
		sysName := "Countess"
		got, err = e.s.UpdateProfile(e.sys(), ada.ID, store.ProfileUpdate{DisplayName: &sysName})
		require.NoError(t, err)
		require.Equal(t, sysName, got.DisplayName)
	})
}

func TestDeleteUser(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		e.say(ada, c, "before")

		requireKind(t, e.s.DeleteUser(e.as(bob), ada.ID), store.ErrForbidden)
		require.NoError(t, e.s.DeleteUser(e.as(ada), ada.ID))

		_, err := e.s.GetUser(e.as(bob), ada.ID)
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.UserByEmail(e.sys(), ada.Email)
		requireKind(t, err, database.ErrNotFound) // a deleted user cannot sign in
		requireKind(t, e.s.DeleteUser(e.sys(), ada.ID), database.ErrNotFound)

		// A leftover session of the deleted user can do nothing: it sees no
		// chat to append to.
		_, err = e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: c.ID, Content: "after"})
		requireKind(t, err, database.ErrNotFound)
		// Nobody can open a chat with them.
		_, _, err = e.s.CreateDirectChat(e.as(e.user("carol")), ada.ID)
		requireKind(t, err, database.ErrNotFound)
		// Their messages stay, with their sender.
		h := e.history(bob, c)
		require.Len(t, h, 1)
		require.Equal(t, ada.ID, h[0].SenderID)
	})
}
