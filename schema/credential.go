package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Credential holds the schema definition for the Credential entity: a user's
// password hash, kept apart from the public profile in users.
//
// It is an entity of its own so that the hash is unreachable by construction
// for user viewers: only the system reads credentials (see its Policy), and no
// entity has an edge into it, so no query on users, chats, memberships or
// messages can filter, order or aggregate by a hash. A user may write their
// own credential (a password change) but never read one back.
type Credential struct {
	ent.Schema
}

// Mixin of the Credential.
func (Credential) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TimeMixin{}}
}

// Fields of the Credential.
func (Credential) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("user_id", uuid.UUID{}).
			Immutable().
			Comment("the user the credential signs in; a user has at most one"),
		field.String("password_hash").
			// Hashes are text (PHC strings); a NUL or invalid UTF-8 is refused
			// before PostgreSQL would refuse it unclassified.
			Validate(ValidateText).
			NotEmpty().
			Sensitive().
			Comment("a password hash made by the application, never the password"),
	}
}

// Indexes of the Credential.
func (Credential) Indexes() []ent.Index {
	return []ent.Index{
		// One credential per user; also serves the foreign key to users.
		index.Fields("user_id").
			Unique().
			StorageKey("credentials_user_id_key"),
	}
}
