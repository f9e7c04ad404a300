// Package viewer says who is acting: a signed-in user, or the system itself.
//
// chatdb's ent privacy policies read the viewer from the context of every query
// and mutation. A context without a viewer is denied everything, so forgetting to
// say who acts fails closed. The system viewer (migrations, seeding, admin tools)
// must be asked for by name:
//
//	ctx = viewer.NewContext(ctx, userID)  // requests made on behalf of a user
//	ctx = viewer.SystemContext(ctx)        // the platform itself; allowed everything
package viewer

import (
	"context"

	"github.com/google/uuid"
)

// Viewer is who performs an operation: a user, identified by ID, or the system.
// The zero Viewer is neither and is allowed nothing.
type Viewer struct {
	userID uuid.UUID
	system bool
}

// UserID returns the acting user's ID, and false when the viewer is not a user
// (the system viewer, or the zero Viewer).
func (v Viewer) UserID() (uuid.UUID, bool) {
	return v.userID, !v.system && v.userID != uuid.Nil
}

// IsSystem reports whether the viewer is the system: migrations, seeding and
// administration, allowed everything.
func (v Viewer) IsSystem() bool { return v.system }

// String returns "system", "user <id>" or "nobody", for logs and errors.
func (v Viewer) String() string {
	switch id, ok := v.UserID(); {
	case v.system:
		return "system"
	case ok:
		return "user " + id.String()
	default:
		return "nobody"
	}
}

type ctxKey struct{}

// NewContext returns a context whose viewer is the user with the given ID. A nil
// ID gives a context with no usable viewer, which is denied everything.
func NewContext(ctx context.Context, userID uuid.UUID) context.Context {
	return context.WithValue(ctx, ctxKey{}, Viewer{userID: userID})
}

// SystemContext returns a context whose viewer is the system, which privacy
// policies allow everything. Use it for migrations, seeding, administration and
// authentication (reading a user by email before anyone is signed in), and never
// for work done on behalf of a user.
func SystemContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, Viewer{system: true})
}

// FromContext returns the context's viewer, and false when it has none: no
// NewContext or SystemContext was applied, or NewContext was given uuid.Nil.
func FromContext(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(ctxKey{}).(Viewer)
	if !ok {
		return Viewer{}, false
	}
	if _, user := v.UserID(); !user && !v.system {
		return Viewer{}, false
	}
	return v, true
}
