package store

import (
	"context"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/credential"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/rule"
	"github.com/chatdb/chatdb/schema"
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
	// PasswordHash, when not nil, replaces the password hash ("" removes it, so
	// that the user signs in elsewhere only).
	PasswordHash *string
}

// CreateUser creates a user, with a credential when u has a password hash.
// Only the system viewer may create users (sign-up is the application's job,
// done with viewer.SystemContext). A taken email, in any case, gives
// database.ErrConflict; invalid input gives database.ErrInvalid.
//
// Cost: one INSERT; with a password hash, a transaction of two INSERTs
// (4 round trips).
func (s *Store) CreateUser(ctx context.Context, u NewUser) (_ *User, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.CreateUser", uuid.Nil)
	defer span.end(&err)
	const op = "create user"
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	var created *ent.User
	create := func(ctx context.Context, client *ent.Client) (err error) {
		now := s.clock()
		created, err = client.User.Create().
			SetEmail(u.Email).
			SetDisplayName(u.DisplayName).
			SetCreatedAt(now).SetUpdatedAt(now).
			Save(ctx)
		if err != nil || u.PasswordHash == "" {
			return err
		}
		return client.Credential.Create().SetUserID(created.ID).SetPasswordHash(u.PasswordHash).Exec(ctx)
	}
	if u.PasswordHash == "" {
		err = create(ctx, s.client)
	} else {
		err = s.db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error { return create(ctx, tx.Client()) })
	}
	if err != nil {
		return nil, fail(op, err)
	}
	return userOf(created), nil
}

// GetUser returns the user with the given ID. Any signed-in viewer may read any
// live user's profile. Soft-deleted users are not found (database.ErrNotFound),
// and a deleted viewer finds nobody.
//
// Cost: one SELECT by primary key, with the viewer's liveness checked in it.
func (s *Store) GetUser(ctx context.Context, id uuid.UUID) (_ *User, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.GetUser", uuid.Nil)
	defer span.end(&err)
	a, err := actorOf(ctx)
	if err != nil {
		return nil, fail("get user", err)
	}
	u, err := s.b.getUser(ctx, a, id)
	if err != nil {
		return nil, fail("get user", err)
	}
	return u, nil
}

// UserByEmail returns the live user with the given email, compared as stored
// (trimmed, lower-cased). Soft-deleted users are not found, so they cannot sign
// in: an application signs a user in with viewer.SystemContext, UserByEmail,
// then PasswordHash.
//
// It reads from the primary even when the database has replicas: a sign-in
// must find an account created a moment ago, on any server.
//
// Cost: one SELECT by the unique index on email.
func (s *Store) UserByEmail(ctx context.Context, email string) (_ *User, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.UserByEmail", uuid.Nil)
	defer span.end(&err)
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
	return userOf(u), nil
}

// PasswordHash returns the password hash of the live user id, for an
// application to check a password at sign-in. Only the system viewer reads
// hashes (ErrForbidden otherwise); a user without one, or a deleted user, gives
// database.ErrNotFound.
//
// It reads from the primary even when the database has replicas: a password
// changed a moment ago must not still let the old one in.
//
// Cost: one SELECT by the unique index on credentials.user_id.
func (s *Store) PasswordHash(ctx context.Context, id uuid.UUID) (_ string, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.PasswordHash", uuid.Nil)
	defer span.end(&err)
	c, err := s.client.Credential.Query().
		Where(credential.UserID(id), func(sel *sql.Selector) { sel.Where(rule.Live(id)) }).
		Only(ctx)
	if err != nil {
		return "", fail("password hash", err)
	}
	return c.PasswordHash, nil
}

// UpdateProfile changes the profile of user id, which must be the viewer (or the
// viewer is the system), and returns the updated user. Invalid input gives
// database.ErrInvalid; a deleted user, database.ErrNotFound.
//
// Cost: a transaction of the user's UPDATE, the credential's upsert or DELETE
// when the hash changes, and a SELECT of the result.
func (s *Store) UpdateProfile(ctx context.Context, id uuid.UUID, p ProfileUpdate) (_ *User, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.UpdateProfile", uuid.Nil)
	defer span.end(&err)
	const op = "update profile"
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	if err := actsAs(ctx, id); err != nil {
		return nil, fail(op, err)
	}
	var out *ent.User
	err = s.db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
		up := tx.User.Update().Where(user.ID(id), user.DeletedAtIsNil()).SetUpdatedAt(s.clock())
		if p.DisplayName != nil {
			up.SetDisplayName(*p.DisplayName)
		}
		// updated_at moves even when only the hash changes: the update also
		// says whether the user is there to change.
		n, err := up.Save(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("user")
		}
		switch {
		case p.PasswordHash == nil:
		case *p.PasswordHash == "":
			if _, err := tx.Credential.Delete().Where(credential.UserID(id)).Exec(ctx); err != nil {
				return err
			}
		default:
			err := tx.Credential.Create().SetUserID(id).SetPasswordHash(*p.PasswordHash).
				OnConflictColumns(credential.FieldUserID).
				UpdatePasswordHash().UpdateUpdatedAt().
				Exec(ctx)
			if err != nil {
				return err
			}
		}
		out, err = tx.User.Query().Where(user.ID(id)).Only(ctx)
		return err
	})
	if err != nil {
		return nil, fail(op, err)
	}
	return userOf(out), nil
}

// DeleteUser soft-deletes user id, which must be the viewer (or the viewer is
// the system): the row stays, so that the user's messages keep their sender, but
// GetUser and UserByEmail no longer find it, and the user can no longer do
// anything (the rules require a live viewer). The email stays taken. Only the
// system can restore a deleted user. Deleting a deleted user gives
// database.ErrNotFound.
//
// Cost: one UPDATE.
func (s *Store) DeleteUser(ctx context.Context, id uuid.UUID) (err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.DeleteUser", uuid.Nil)
	defer span.end(&err)
	const op = "delete user"
	if err := ownTx(ctx); err != nil {
		return fail(op, err)
	}
	if err := actsAs(ctx, id); err != nil {
		return fail(op, err)
	}
	now := s.clock()
	n, err := s.client.User.Update().
		Where(user.ID(id), user.DeletedAtIsNil()).
		SetDeletedAt(now).SetUpdatedAt(now).
		Save(ctx)
	if err != nil {
		return fail(op, err)
	}
	if n == 0 {
		return fail(op, notFound("user"))
	}
	return nil
}
