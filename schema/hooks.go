package schema

import (
	"context"

	"entgo.io/ent"

	gen "github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/hook"
)

// normalizeEmail stores every email address in its normalised form, so that the
// unique index on users.email is case-insensitive whichever client wrote the row.
func normalizeEmail(next ent.Mutator) ent.Mutator {
	return hook.UserFunc(func(ctx context.Context, m *gen.UserMutation) (ent.Value, error) {
		if e, ok := m.Email(); ok {
			m.SetEmail(NormalizeEmail(e))
		}
		return next.Mutate(ctx, m)
	})
}

// validateMetadata rejects bad message metadata before any SQL is sent; ent has no
// validators for JSON fields.
func validateMetadata(next ent.Mutator) ent.Mutator {
	return hook.MessageFunc(func(ctx context.Context, m *gen.MessageMutation) (ent.Value, error) {
		if md, ok := m.Metadata(); ok {
			if err := ValidateMetadata(md); err != nil {
				return nil, &FieldError{Field: "Message.metadata", Err: err}
			}
		}
		return next.Mutate(ctx, m)
	})
}
