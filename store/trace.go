package store

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatdb/chatdb/database"
)

// Tracing: every operation of the Store is a span, chatdb.store.<Method>
// (chatdb.store.AppendMessage, ...), of the provider the database was opened
// with (database.Config.TracerProvider), with the chat's ID when the
// operation names one (chatdb.chat.id) and the operation's result class
// (chatdb.result: "ok", or ErrorClass's class). The SQL statements it runs are
// its children (package database), and so are the pool-wait and retry events.
// Nothing of a message, a title, an e-mail address or a password is put on a
// span: only IDs and classes.

// tracerName is the tracer name of the store's spans.
const tracerName = "github.com/chatdb/chatdb/store"

// Attribute keys of the store's spans.
const (
	// AttrChatID is the chat an operation is on.
	AttrChatID = attribute.Key("chatdb.chat.id")
	// AttrResult is an operation's result class: "ok" or ErrorClass's.
	AttrResult = attribute.Key("chatdb.result")
)

// opSpan is a store operation's span; the zero value (tracing off, or a span
// that does not record) does nothing.
type opSpan struct{ span trace.Span }

// startOp starts the span called name (chatdb.store.<Method>, a constant at
// each call: a name built per call would cost an allocation on every call,
// traced or not), on chatID unless that is uuid.Nil.
func (s *Store) startOp(ctx context.Context, name string, chatID uuid.UUID) (context.Context, opSpan) {
	if !s.db.Tracing() {
		return ctx, opSpan{}
	}
	ctx, span := s.tracer.Start(ctx, name)
	if !span.IsRecording() {
		return ctx, opSpan{}
	}
	if chatID != uuid.Nil {
		span.SetAttributes(AttrChatID.String(chatID.String()))
	}
	return ctx, opSpan{span: span}
}

// end ends the span with the result *errp. A failure the caller caused or may
// expect (ErrNotFound, ErrForbidden, invalid input, a conflict) is a result,
// not a fault: the span's status is left unset, as the conventions advise for
// outcomes that are not errors of the operation itself; any other failure sets
// the status to Error. Neither records the error's text.
func (o opSpan) end(errp *error) {
	if o.span == nil {
		return
	}
	class := ErrorClass(*errp)
	o.span.SetAttributes(AttrResult.String(class))
	if *errp != nil {
		o.span.SetAttributes(semconv.ErrorTypeKey.String(class))
		if !expectedClasses[class] {
			o.span.SetStatus(codes.Error, class)
		}
	}
	o.span.End()
}

// expectedClasses are the classes of the answers a caller asked for: the
// store refusing or not finding, rather than failing.
var expectedClasses = map[string]bool{
	"forbidden": true, "invalid_cursor": true, "not_found": true, "invalid": true,
	"conflict": true, "invalid_reference": true, "check": true, "nested_tx": true,
	// The caller gave up; its deadline passing (deadline_exceeded) is a
	// fault: something was slow.
	"canceled": true,
}

// ErrorClass names err's class for telemetry and logs: "ok" for nil,
// "forbidden" (ErrForbidden), "invalid_cursor" (ErrInvalidCursor), or
// database.ErrorClass's class. It never includes the error's text.
func ErrorClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrInvalidCursor):
		return "invalid_cursor"
	}
	return database.ErrorClass(err)
}
