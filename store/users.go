package store

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/viewer"
)

// NewUser is what CreateUser needs to create a user.
type NewUser struct {
	// Email is the user's address; it is stored trimmed and lower-cased, and must
	// be unique ignoring case.
	Email string
	// DisplayName is the name other users see.
	DisplayName string
	// PasswordHash is a password hash made by the application (never a password);
	// empty for users who sign in elsewhere.
	PasswordHash string
}

// ProfileUpdate holds the profile fields UpdateProfile changes; nil fields are
// left as they are.
type ProfileUpdate struct {
	// DisplayName, when not nil, replaces the display name.
	DisplayName *string
	// PasswordHash, when not nil, replaces the password hash ("" clears it).
	PasswordHash *string
}

// CreateUser creates a user. Only the system viewer may create users (sign-up is
// the application's job, done with viewer.SystemContext). A taken email, in any
// case, gives database.ErrConflict; invalid input gives database.ErrInvalid.
//
// Cost: one INSERT, one round trip.
func (s *Store) CreateUser(ctx context.Context, u NewUser) (*ent.User, error) {
	c := s.client.User.Create().
		SetEmail(u.Email).
		SetDisplayName(u.DisplayName)
	if u.PasswordHash != "" {
		c.SetPasswordHash(u.PasswordHash)
	}
	created, err := c.Save(ctx)
	if err != nil {
		return nil, fail("create user", err)
	}
	return created, nil
}

// GetUser returns the user with the given ID. Any signed-in viewer may read any
// live user's profile; PasswordHash is blank unless the viewer is the system.
// Soft-deleted users are not found (database.ErrNotFound).
//
// Cost: one SELECT by primary key. On PostgreSQL the user is read by the
// store's own SQL and carries no ent client.
func (s *Store) GetUser(ctx context.Context, id uuid.UUID) (*ent.User, error) {
	if s.fast() {
		u, err := s.pgGetUser(ctx, id)
		if err != nil {
			return nil, fail("get user", err)
		}
		return u, nil
	}
	u, err := s.client.User.Query().Where(user.ID(id), user.DeletedAtIsNil()).Only(ctx)
	if err != nil {
		return nil, fail("get user", err)
	}
	return u, nil
}

// UserByEmail returns the live user with the given email, compared as stored
// (trimmed, lower-cased). An application signs users in by calling it with
// viewer.SystemContext, which also returns the password hash; soft-deleted users
// are not found, so they cannot sign in.
//
// Cost: one SELECT by the unique index on email.
func (s *Store) UserByEmail(ctx context.Context, email string) (*ent.User, error) {
	if schema.ValidateText(email) != nil {
		// No stored email holds a NUL or invalid UTF-8, and PostgreSQL would
		// refuse the parameter outright.
		return nil, fail("user by email", notFound("user"))
	}
	u, err := s.client.User.Query().
		Where(user.Email(schema.NormalizeEmail(email)), user.DeletedAtIsNil()).
		Only(ctx)
	if err != nil {
		return nil, fail("user by email", err)
	}
	return u, nil
}

// UpdateProfile changes the profile of user id, which must be the viewer (or the
// viewer is the system), and returns the updated user. Invalid input gives
// database.ErrInvalid; a deleted user, database.ErrNotFound.
//
// Cost: an UPDATE and a SELECT of the result, in a transaction ent opens for
// them: 4 round trips.
func (s *Store) UpdateProfile(ctx context.Context, id uuid.UUID, p ProfileUpdate) (*ent.User, error) {
	const op = "update profile"
	if err := actsAs(ctx, id); err != nil {
		return nil, fail(op, err)
	}
	up := s.client.User.UpdateOneID(id).Where(user.DeletedAtIsNil())
	if p.DisplayName != nil {
		up.SetDisplayName(*p.DisplayName)
	}
	if p.PasswordHash != nil {
		up.SetPasswordHash(*p.PasswordHash)
	}
	u, err := up.Save(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	if v, _ := viewer.FromContext(ctx); !v.IsSystem() {
		// ent reads the row back without the query interceptors: blank the hash
		// as every other read by a user does.
		u.PasswordHash = ""
	}
	return u, nil
}

// DeleteUser soft-deletes user id, which must be the viewer (or the viewer is
// the system): the row stays, so that the user's messages keep their sender, but
// GetUser and UserByEmail no longer find it and the user can no longer append.
// The email stays taken. Deleting a deleted user gives database.ErrNotFound.
//
// Cost: one UPDATE.
func (s *Store) DeleteUser(ctx context.Context, id uuid.UUID) error {
	const op = "delete user"
	if err := actsAs(ctx, id); err != nil {
		return fail(op, err)
	}
	n, err := s.client.User.Update().
		Where(user.ID(id), user.DeletedAtIsNil()).
		SetDeletedAt(s.clock()).
		Save(ctx)
	if err != nil {
		return fail(op, err)
	}
	if n == 0 {
		return fail(op, notFound("user"))
	}
	return nil
}

// actsAs checks that the viewer may act for user id: it is that user, or the
// system. The privacy policy enforces the same; checking first gives
// ErrForbidden instead of an update that matches no row.
func actsAs(ctx context.Context, id uuid.UUID) error {
	v, ok := viewer.FromContext(ctx)
	if !ok {
		return forbidden("no viewer in context")
	}
	if v.IsSystem() {
		return nil
	}
	if uid, _ := v.UserID(); uid != id {
		return forbidden("a user changes only their own profile")
	}
	return nil
}

// viewerUser returns the signed-in user's ID, or ErrForbidden when the viewer is
// missing or is the system: operations done as a member of chats need a user.
func viewerUser(ctx context.Context) (uuid.UUID, error) {
	v, ok := viewer.FromContext(ctx)
	if !ok {
		return uuid.Nil, forbidden("no viewer in context")
	}
	id, ok := v.UserID()
	if !ok {
		return uuid.Nil, forbidden("the " + strings.ToLower(v.String()) + " viewer is not a user")
	}
	return id, nil
}
