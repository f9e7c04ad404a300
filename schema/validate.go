package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatdb/chatdb/schema/schematype"
)

// MaxClockSkew is how far in the future a time given by a writer may be: the
// clocks of application servers differ a little, never by more.
const MaxClockSkew = time.Minute

// ValidateNotFuture checks that t is not later than now by more than
// MaxClockSkew.
func ValidateNotFuture(t time.Time) error {
	if t.After(Now().Add(MaxClockSkew)) {
		return ErrFutureTime
	}
	return nil
}

// Limits on what the schema accepts. They are checked in Go before any SQL is sent;
// the database enforces the length limits again with CHECK constraints.
const (
	// MaxEmailBytes is the longest email address accepted (RFC 5321's path limit).
	MaxEmailBytes = 254
	// MaxDisplayNameRunes is the longest display name, in characters.
	MaxDisplayNameRunes = 100
	// MaxTitleRunes is the longest chat title, in characters.
	MaxTitleRunes = 200
	// MaxContentBytes is the largest message content, in bytes of UTF-8.
	MaxContentBytes = 64 << 10
	// MaxMetadataBytes is the largest message metadata, in bytes of encoded JSON.
	MaxMetadataBytes = 16 << 10
)

// Validation errors. A validator wraps one of them with the rule that failed; the
// rejected value itself is never part of the message, since it may be a message body.
var (
	// ErrEmpty is returned when a required text value is empty or only white space.
	ErrEmpty = errors.New("schema: value is empty")
	// ErrTooLong is returned when a value is over its length limit.
	ErrTooLong = errors.New("schema: value is too long")
	// ErrInvalidUTF8 is returned when a text value is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("schema: value is not valid UTF-8")
	// ErrNULByte is returned when a text value contains a NUL byte, which PostgreSQL
	// cannot store in text and SQLite silently truncates at in some functions.
	ErrNULByte = errors.New("schema: value contains a NUL byte")
	// ErrInvalidEmail is returned when an email address is malformed.
	ErrInvalidEmail = errors.New("schema: malformed email address")
	// ErrInvalidJSON is returned when a JSON value cannot be encoded or is nested
	// too deeply.
	ErrInvalidJSON = errors.New("schema: invalid JSON value")
	// ErrReplyOutside is returned when a message replies to a message of another
	// chat.
	ErrReplyOutside = errors.New("schema: the message replied to is not in this chat")
	// ErrFutureTime is returned when a time a user gives is later than now by
	// more than MaxClockSkew: a message or chat dated in the future would stay
	// at the top of every member's inbox.
	ErrFutureTime = errors.New("schema: time is in the future")
)

// FieldError is returned by schema hooks when a field fails a check that ent's
// generated validators cannot express (JSON fields have none). Field validators
// return ent's *ValidationError, which wraps the same sentinel errors.
type FieldError struct {
	// Field is "Type.field", as in ent's validation errors.
	Field string
	// Err is the rule that failed, wrapping one of the sentinel errors above.
	Err error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("schema: invalid %s: %v", e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// InvalidInput reports true: the value was refused before any SQL was sent.
// database.MapError classifies an error with this method as
// database.ErrInvalid without importing this package, which sits above it.
func (e *FieldError) InvalidInput() bool { return true }

// ValidateText checks that s is valid UTF-8 without NUL bytes. It accepts the empty
// string; pair it with a length check where a value is required.
func ValidateText(s string) error {
	if !utf8.ValidString(s) {
		return ErrInvalidUTF8
	}
	if strings.IndexByte(s, 0) >= 0 {
		return ErrNULByte
	}
	return nil
}

// ValidateContent checks a message's content: non-empty, at most MaxContentBytes,
// valid UTF-8, no NUL bytes.
func ValidateContent(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return ErrEmpty
	case len(s) > MaxContentBytes:
		return fmt.Errorf("%w: over %d bytes", ErrTooLong, MaxContentBytes)
	}
	return ValidateText(s)
}

// ValidateDisplayName checks a user's display name: non-empty, at most
// MaxDisplayNameRunes characters, valid UTF-8, no NUL bytes.
func ValidateDisplayName(s string) error {
	return validateLine(s, MaxDisplayNameRunes, true)
}

// ValidateTitle checks a chat title: at most MaxTitleRunes characters, valid UTF-8,
// no NUL bytes. A chat may have no title.
func ValidateTitle(s string) error {
	return validateLine(s, MaxTitleRunes, false)
}

func validateLine(s string, maxRunes int, required bool) error {
	if err := ValidateText(s); err != nil {
		return err
	}
	if required && strings.TrimSpace(s) == "" {
		return ErrEmpty
	}
	if utf8.RuneCountInString(s) > maxRunes {
		return fmt.Errorf("%w: over %d characters", ErrTooLong, maxRunes)
	}
	return nil
}

// NormalizeEmail returns the stored form of an email address: trimmed and lower-cased,
// so that the unique index on the column is a case-insensitive one.
func NormalizeEmail(s string) string {
	if !utf8.ValidString(s) {
		// Lower-casing would replace the invalid bytes with U+FFFD and turn an
		// address ValidateEmail rejects into a different one it accepts; leave
		// the value as it is, to be rejected.
		return s
	}
	return strings.ToLower(strings.TrimSpace(s))
}

// ValidateEmail checks an email address in its stored form: a bare addr-spec
// (no display name, no angle brackets), with a domain that has a dot, at most
// MaxEmailBytes long, and already normalised by NormalizeEmail.
func ValidateEmail(s string) error {
	if err := ValidateText(s); err != nil {
		return err
	}
	if s == "" {
		return ErrEmpty
	}
	if len(s) > MaxEmailBytes {
		return fmt.Errorf("%w: over %d bytes", ErrTooLong, MaxEmailBytes)
	}
	if s != NormalizeEmail(s) {
		return fmt.Errorf("%w: not in normalised form (trimmed, lower case)", ErrInvalidEmail)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		// The parser's error would echo the address; say what is wrong instead.
		return ErrInvalidEmail
	}
	at := strings.LastIndexByte(s, '@')
	if domain := s[at+1:]; !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return fmt.Errorf("%w: domain has no dot", ErrInvalidEmail)
	}
	return nil
}

// ValidateMetadata checks a message's metadata: every string in it (keys too) valid
// UTF-8 without NUL bytes (PostgreSQL's jsonb refuses \u0000), and at most
// MaxMetadataBytes once encoded as JSON.
func ValidateMetadata(md schematype.MessageMetadata) error {
	if err := ValidateText(md.Model); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	for i, a := range md.Attachments {
		for _, s := range []string{a.URL, a.Name, a.ContentType} {
			if err := ValidateText(s); err != nil {
				return fmt.Errorf("attachment %d: %w", i, err)
			}
		}
	}
	if err := validateJSONValue(md.Extra, 0); err != nil {
		return fmt.Errorf("extra: %w", err)
	}
	b, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("%w: cannot be encoded as JSON", ErrInvalidJSON)
	}
	if len(b) > MaxMetadataBytes {
		return fmt.Errorf("%w: over %d bytes of JSON", ErrTooLong, MaxMetadataBytes)
	}
	return nil
}

// maxJSONDepth bounds the nesting of metadata, so that validating it cannot exhaust
// the stack.
const maxJSONDepth = 32

func validateJSONValue(v any, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrInvalidJSON, maxJSONDepth)
	}
	switch v := v.(type) {
	case string:
		return ValidateText(v)
	case map[string]any:
		for k, e := range v {
			if err := ValidateText(k); err != nil {
				return err
			}
			if err := validateJSONValue(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := validateJSONValue(e, depth+1); err != nil {
				return err
			}
		}
	case nil, bool, float64:
	default:
		// Other Go types ([]string, map[string]string, structs) are stored as
		// JSON just the same. Their strings are checked as they are first:
		// encoding would already have replaced invalid UTF-8 with U+FFFD, turning
		// input to refuse into different input to store.
		if err := validateReflect(reflect.ValueOf(v), depth); err != nil {
			return err
		}
		// Then in encoded form, for what a MarshalJSON method adds. Decoding
		// yields only the types handled above, so this does not recurse further.
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%w: cannot be encoded as JSON", ErrInvalidJSON)
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return fmt.Errorf("%w: cannot be encoded as JSON", ErrInvalidJSON)
		}
		return validateJSONValue(generic, depth)
	}
	return nil
}

// validateReflect checks every string reachable from v (exported struct fields,
// slice and array elements, map keys and values) with ValidateText.
func validateReflect(v reflect.Value, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrInvalidJSON, maxJSONDepth)
	}
	switch v.Kind() {
	case reflect.String:
		return ValidateText(v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return validateReflect(v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // []byte is encoded as base64
		}
		for i := range v.Len() {
			if err := validateReflect(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if err := validateReflect(it.Key(), depth+1); err != nil {
				return err
			}
			if err := validateReflect(it.Value(), depth+1); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			if err := validateReflect(v.Field(i), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
