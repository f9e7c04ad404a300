package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"
	"github.com/google/uuid"
)

// NewID returns a new UUIDv7: time-ordered, so rows created together sit together
// in a B-tree index, and made by the application, so a client can choose the ID of
// a message before it sends it and retry the send safely.
func NewID() uuid.UUID {
	// NewV7 fails only when the system's random source fails; there is no way to go
	// on from that, and every ID generator in the process would be affected.
	return uuid.Must(uuid.NewV7())
}

// Now returns the current time as chatdb stores it: UTC, truncated to microseconds.
// PostgreSQL keeps microseconds; truncating in Go as well means a value read back
// equals the value written, which keyset cursors built from it rely on.
func Now() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// IDMixin gives an entity an application-made UUIDv7 primary key.
type IDMixin struct {
	mixin.Schema
}

var _ ent.Mixin = (*IDMixin)(nil)

// Fields of the IDMixin.
func (IDMixin) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).
			Default(NewID).
			Immutable().
			Comment("UUIDv7 made by the application"),
	}
}

// TimeMixin records when a row was created and last updated.
type TimeMixin struct {
	mixin.Schema
}

var _ ent.Mixin = (*TimeMixin)(nil)

// Fields of the TimeMixin.
func (TimeMixin) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").
			Default(Now).
			Immutable(),
		field.Time("updated_at").
			Default(Now).
			UpdateDefault(Now),
	}
}

// SoftDeleteMixin marks a row deleted without removing it, so that references to it
// (a message's sender, a reply) stay valid and a deletion can be audited or undone.
type SoftDeleteMixin struct {
	mixin.Schema
}

var _ ent.Mixin = (*SoftDeleteMixin)(nil)

// Fields of the SoftDeleteMixin.
func (SoftDeleteMixin) Fields() []ent.Field {
	return []ent.Field{
		field.Time("deleted_at").
			Optional().
			Nillable().
			Comment("set when the row is soft-deleted; NULL while it is live"),
	}
}
