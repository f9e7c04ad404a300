package store

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/schema"
)

// fail wraps err once for the operation op: a privacy denial becomes
// ErrForbidden, a database failure is classified by database.MapError, and the
// original error stays reachable with errors.As.
func fail(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrInvalidCursor):
	case errors.Is(err, privacy.Deny):
		err = fmt.Errorf("%w: %w", ErrForbidden, err)
	case errors.Is(err, schema.ErrReplyOutside):
		// The reply rule's hook, on the ent path: reported as the hand-written
		// statements report it, and as nothing else.
		err = errReplyOutside()
	default:
		err = database.MapError(err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// invalid reports input that failed validation in Go, before any SQL, as
// database.ErrInvalid with the schema rule that failed (schema.ErrTooLong, ...).
func invalid(field string, err error) error {
	return database.MapError(&schema.FieldError{Field: field, Err: err})
}

// forbidden is ErrForbidden with a reason.
func forbidden(reason string) error {
	return fmt.Errorf("%w: %s", ErrForbidden, reason)
}

// notFound is database.ErrNotFound with what was not found.
func notFound(what string) error {
	return fmt.Errorf("%w: %s", database.ErrNotFound, what)
}

// The refusals of an append, shared by its ent path, its PostgreSQL statement
// and imports, so that the dialects answer alike.

func errCannotAppend() error { return forbidden("the viewer cannot append to this chat") }

func errReplyOutside() error {
	return fmt.Errorf("%w: the message replied to is not in this chat", database.ErrInvalidReference)
}

func errStoredOther(id uuid.UUID) error {
	return fmt.Errorf("%w: message %s is stored with other content", database.ErrConflict, id)
}
