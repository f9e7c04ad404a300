package schema_test

import (
	"encoding/json"
	"errors"
	"math"
	"net/mail"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
)

// sentinels are every error a validator wraps.
var sentinels = []error{
	schema.ErrEmpty, schema.ErrTooLong, schema.ErrInvalidUTF8, schema.ErrNULByte,
	schema.ErrInvalidEmail, schema.ErrInvalidJSON,
}

// requireRule checks that err wraps want and no other sentinel.
func requireRule(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		require.NoError(t, err)
		return
	}
	require.ErrorIs(t, err, want)
	for _, other := range sentinels {
		if other != want {
			require.NotErrorIs(t, err, other, "%v", err)
		}
	}
}

type textCase struct {
	name string
	in   string
	want error
}

func runText(t *testing.T, fn func(string) error, cases []textCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fn(tc.in)
			requireRule(t, err, tc.want)
			if err != nil && len(tc.in) > 3 {
				require.NotContains(t, err.Error(), tc.in, "the error repeats the value")
			}
		})
	}
}

func TestValidateText(t *testing.T) {
	t.Parallel()
	runText(t, schema.ValidateText, []textCase{
		{"empty", "", nil},
		{"ascii", "hello", nil},
		{"unicode", "héllo 世界 🙂", nil},
		{"invalid", "bad \xff byte", schema.ErrInvalidUTF8},
		{"truncated rune", "\xe4\xb8", schema.ErrInvalidUTF8},
		{"surrogate", "\xed\xa0\x80", schema.ErrInvalidUTF8},
		{"NUL", "nul \x00 byte", schema.ErrNULByte},
		{"NUL at end", "nul\x00", schema.ErrNULByte},
	})
}

func TestValidateContent(t *testing.T) {
	t.Parallel()
	runText(t, schema.ValidateContent, []textCase{
		{"one char", "a", nil},
		{"multi-line", "line one\nline two\n", nil},
		{"at limit", strings.Repeat("a", schema.MaxContentBytes), nil},
		{"at limit multibyte", strings.Repeat("é", schema.MaxContentBytes/2), nil},
		{"empty", "", schema.ErrEmpty},
		{"spaces", "   ", schema.ErrEmpty},
		{"white space", " \t\r\n\u00a0\u2003", schema.ErrEmpty},
		{"over limit", strings.Repeat("a", schema.MaxContentBytes+1), schema.ErrTooLong},
		{"over limit in bytes not runes", strings.Repeat("é", schema.MaxContentBytes/2) + "a", schema.ErrTooLong},
		{"invalid UTF-8", "hello \xff", schema.ErrInvalidUTF8},
		{"only invalid", "\xff", schema.ErrInvalidUTF8},
		{"NUL", "hello\x00world", schema.ErrNULByte},
		{"only NUL", "\x00", schema.ErrNULByte},
	})
}

func TestValidateDisplayName(t *testing.T) {
	t.Parallel()
	runText(t, schema.ValidateDisplayName, []textCase{
		{"plain", "Alice", nil},
		{"at limit in runes", strings.Repeat("語", schema.MaxDisplayNameRunes), nil},
		{"empty", "", schema.ErrEmpty},
		{"spaces", "  \t", schema.ErrEmpty},
		{"over limit", strings.Repeat("a", schema.MaxDisplayNameRunes+1), schema.ErrTooLong},
		{"over limit in runes", strings.Repeat("語", schema.MaxDisplayNameRunes+1), schema.ErrTooLong},
		{"invalid UTF-8", "Al\xffice", schema.ErrInvalidUTF8},
		{"NUL", "Al\x00ice", schema.ErrNULByte},
	})
}

func TestValidateTitle(t *testing.T) {
	t.Parallel()
	runText(t, schema.ValidateTitle, []textCase{
		{"plain", "Trip planning", nil},
		{"empty is allowed", "", nil},
		{"at limit in runes", strings.Repeat("語", schema.MaxTitleRunes), nil},
		{"over limit", strings.Repeat("t", schema.MaxTitleRunes+1), schema.ErrTooLong},
		{"over limit in runes", strings.Repeat("語", schema.MaxTitleRunes+1), schema.ErrTooLong},
		{"invalid UTF-8", "Trip \xff", schema.ErrInvalidUTF8},
		{"NUL", "Trip\x00", schema.ErrNULByte},
	})
}

func TestValidateEmail(t *testing.T) {
	t.Parallel()
	runText(t, schema.ValidateEmail, []textCase{
		{"plain", "alice@example.com", nil},
		{"plus and dots", "alice.b+chat@mail.example.co.uk", nil},
		{"at limit", strings.Repeat("a", schema.MaxEmailBytes-len("@example.com")) + "@example.com", nil},
		{"empty", "", schema.ErrEmpty},
		{"no at", "no-at", schema.ErrInvalidEmail},
		{"no dot in domain", "a@b", schema.ErrInvalidEmail},
		{"two ats", "a@@b.c", schema.ErrInvalidEmail},
		{"display name", "A <a@b.c>", schema.ErrInvalidEmail},
		{"angle brackets", "<a@b.c>", schema.ErrInvalidEmail},
		{"lower display name", "a <a@b.c>", schema.ErrInvalidEmail},
		{"two addresses", "a@b.c, d@e.f", schema.ErrInvalidEmail},
		{"domain starts with dot", "a@.b.c", schema.ErrInvalidEmail},
		{"domain ends with dot", "a@b.c.", schema.ErrInvalidEmail},
		{"no local part", "@b.c", schema.ErrInvalidEmail},
		{"upper case", "Alice@example.com", schema.ErrInvalidEmail},
		{"not trimmed", " alice@example.com", schema.ErrInvalidEmail},
		{"over limit", strings.Repeat("a", schema.MaxEmailBytes-len("@example.com")+1) + "@example.com", schema.ErrTooLong},
		{"invalid UTF-8", "al\xffice@example.com", schema.ErrInvalidUTF8},
		{"NUL", "al\x00ice@example.com", schema.ErrNULByte},
	})
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"  Alice@Example.COM ", "alice@example.com"},
		{"alice@example.com", "alice@example.com"},
		{"\tBOB@EXAMPLE.ORG\n", "bob@example.org"},
		{"", ""},
		{"   ", ""},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, schema.NormalizeEmail(tc.in), "NormalizeEmail(%q)", tc.in)
		require.NoError(t, func() error {
			if tc.want == "" {
				return nil
			}
			return schema.ValidateEmail(schema.NormalizeEmail(tc.in))
		}())
	}
}

// Normalising must not hide invalid input from ValidateEmail: lower-casing
// replaces invalid UTF-8 with U+FFFD, which would turn a rejected address into an
// accepted, different one.
func TestNormalizeEmailKeepsInvalidUTF8(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"al\xffice@example.com", " Al\xffice@Example.com", "\xff"} {
		err := schema.ValidateEmail(schema.NormalizeEmail(in))
		requireRule(t, err, schema.ErrInvalidUTF8)
	}
}

func TestValidateMetadata(t *testing.T) {
	t.Parallel()
	deep := func(n int) map[string]any {
		v := map[string]any{"leaf": "x"}
		for range n {
			v = map[string]any{"n": v}
		}
		return v
	}
	cases := []struct {
		name string
		md   schematype.MessageMetadata
		want error
	}{
		{"zero", schematype.MessageMetadata{}, nil},
		{"full", schematype.MessageMetadata{
			Model: "gpt-test", PromptTokens: 10, CompletionTokens: 20,
			Attachments: []schematype.Attachment{{URL: "https://x/a.png", Name: "a.png", ContentType: "image/png", Size: 1}},
			Extra:       map[string]any{"a": []any{1.0, "b", nil, true, map[string]any{"c": "日本"}}},
		}, nil},
		{"nested to the limit", schematype.MessageMetadata{Extra: deep(30)}, nil},
		{"model NUL", schematype.MessageMetadata{Model: "m\x00"}, schema.ErrNULByte},
		{"model invalid UTF-8", schematype.MessageMetadata{Model: "m\xff"}, schema.ErrInvalidUTF8},
		{"attachment URL NUL", schematype.MessageMetadata{Attachments: []schematype.Attachment{{URL: "https://x/\x00"}}}, schema.ErrNULByte},
		{"attachment name invalid", schematype.MessageMetadata{Attachments: []schematype.Attachment{{URL: "u", Name: "\xff"}}}, schema.ErrInvalidUTF8},
		{"attachment type NUL", schematype.MessageMetadata{Attachments: []schematype.Attachment{{URL: "u", ContentType: "a\x00"}}}, schema.ErrNULByte},
		{"extra value NUL", schematype.MessageMetadata{Extra: map[string]any{"k": "v\x00"}}, schema.ErrNULByte},
		{"extra key NUL", schematype.MessageMetadata{Extra: map[string]any{"k\x00": "v"}}, schema.ErrNULByte},
		{"extra key invalid UTF-8", schematype.MessageMetadata{Extra: map[string]any{"k\xff": "v"}}, schema.ErrInvalidUTF8},
		{"extra nested NUL", schematype.MessageMetadata{Extra: map[string]any{"a": []any{map[string]any{"b": "\x00"}}}}, schema.ErrNULByte},
		{"extra nested key NUL", schematype.MessageMetadata{Extra: map[string]any{"a": map[string]any{"\x00": 1.0}}}, schema.ErrNULByte},
		// Values of other Go types are stored as JSON just the same; PostgreSQL's
		// jsonb refuses \u0000 in them too.
		{"extra typed slice NUL", schematype.MessageMetadata{Extra: map[string]any{"tags": []string{"ok", "a\x00"}}}, schema.ErrNULByte},
		{"extra typed map NUL", schematype.MessageMetadata{Extra: map[string]any{"m": map[string]string{"k": "\x00"}}}, schema.ErrNULByte},
		{"extra struct NUL", schematype.MessageMetadata{Extra: map[string]any{"s": struct{ A string }{"\x00"}}}, schema.ErrNULByte},
		{"extra typed slice ok", schematype.MessageMetadata{Extra: map[string]any{"tags": []string{"a", "b"}, "n": 3, "f": float32(1.5)}}, nil},
		{"extra too deep", schematype.MessageMetadata{Extra: deep(40)}, schema.ErrInvalidJSON},
		{"extra NaN", schematype.MessageMetadata{Extra: map[string]any{"x": math.NaN()}}, schema.ErrInvalidJSON},
		{"extra channel", schematype.MessageMetadata{Extra: map[string]any{"x": make(chan int)}}, schema.ErrInvalidJSON},
		{"at size limit", schematype.MessageMetadata{Extra: map[string]any{"k": strings.Repeat("x", schema.MaxMetadataBytes-len(`{"extra":{"k":""}}`))}}, nil},
		{"over size limit", schematype.MessageMetadata{Extra: map[string]any{"k": strings.Repeat("x", schema.MaxMetadataBytes-len(`{"extra":{"k":""}}`)+1)}}, schema.ErrTooLong},
		{"over size limit by escaping", schematype.MessageMetadata{Extra: map[string]any{"k": strings.Repeat("<", schema.MaxMetadataBytes/4)}}, schema.ErrTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := schema.ValidateMetadata(tc.md)
			requireRule(t, err, tc.want)
			if err == nil {
				b, err := json.Marshal(tc.md)
				require.NoError(t, err)
				require.LessOrEqual(t, len(b), schema.MaxMetadataBytes)
			}
		})
	}
}

// A cycle in Extra is an error, not a stack overflow.
func TestValidateMetadataCycle(t *testing.T) {
	t.Parallel()
	m := map[string]any{}
	m["self"] = m
	requireRule(t, schema.ValidateMetadata(schematype.MessageMetadata{Extra: m}), schema.ErrInvalidJSON)
}

func TestFieldError(t *testing.T) {
	t.Parallel()
	err := error(&schema.FieldError{Field: "Message.metadata", Err: schema.ErrNULByte})
	require.ErrorIs(t, err, schema.ErrNULByte)
	require.Equal(t, "schema: invalid Message.metadata: schema: value contains a NUL byte", err.Error())
	var fe *schema.FieldError
	require.True(t, errors.As(err, &fe))
	require.Equal(t, "Message.metadata", fe.Field)
	require.True(t, fe.InvalidInput(), "database.MapError classifies it as ErrInvalid by this method")
}

// --- fuzzing ---

// seedText adds inputs that sit on the validators' edges.
func seedText(f *testing.F) {
	for _, s := range []string{
		"", " ", "\t\n", "a", "hello", "\x00", "a\x00b", "\xff", "\xe4\xb8", "é", "語",
		"\u00a0", "\u2003x", "alice@example.com", "  Alice@Example.COM ", "a@b", "a@@b.c",
		"A <a@b.c>", "<a@b.c>", "a@b.c.", "@b.c", "İ@example.com", "K@example.com",
		strings.Repeat("a", 254), strings.Repeat("語", 201),
	} {
		f.Add(s)
	}
}

// checkRule checks the properties every validator error has: it wraps exactly
// one sentinel and does not repeat the value.
func checkRule(t *testing.T, s string, err error) {
	t.Helper()
	n := 0
	for _, sentinel := range sentinels {
		if errors.Is(err, sentinel) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d sentinels", err, n)
	}
	if strings.TrimSpace(s) != "" && strings.Contains(s, "@") && strings.Contains(err.Error(), s) {
		t.Fatalf("error %q repeats the value", err)
	}
}

func FuzzValidateContent(f *testing.F) {
	seedText(f)
	f.Add(strings.Repeat("a", schema.MaxContentBytes))
	f.Fuzz(func(t *testing.T, s string) {
		err := schema.ValidateContent(s)
		valid := strings.TrimSpace(s) != "" && len(s) <= schema.MaxContentBytes &&
			utf8.ValidString(s) && !strings.ContainsRune(s, 0)
		if valid != (err == nil) {
			t.Fatalf("ValidateContent(%q) = %v, want valid=%v", s, err, valid)
		}
		if err != nil {
			checkRule(t, s, err)
			if strings.TrimSpace(s) != "" && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q repeats the content", err)
			}
		}
	})
}

func FuzzValidateDisplayName(f *testing.F) {
	seedText(f)
	f.Fuzz(func(t *testing.T, s string) {
		err := schema.ValidateDisplayName(s)
		valid := strings.TrimSpace(s) != "" && utf8.ValidString(s) && !strings.ContainsRune(s, 0) &&
			utf8.RuneCountInString(s) <= schema.MaxDisplayNameRunes
		if valid != (err == nil) {
			t.Fatalf("ValidateDisplayName(%q) = %v, want valid=%v", s, err, valid)
		}
		if err != nil {
			checkRule(t, s, err)
		}
		// A title accepts whatever a display name accepts.
		if err == nil {
			if err := schema.ValidateTitle(s); err != nil {
				t.Fatalf("ValidateTitle(%q) = %v", s, err)
			}
		}
	})
}

func FuzzValidateEmail(f *testing.F) {
	seedText(f)
	f.Fuzz(func(t *testing.T, s string) {
		n := schema.NormalizeEmail(s)
		if schema.NormalizeEmail(n) != n {
			t.Fatalf("NormalizeEmail is not idempotent on %q: %q then %q", s, n, schema.NormalizeEmail(n))
		}
		if !utf8.ValidString(s) {
			if err := schema.ValidateEmail(n); !errors.Is(err, schema.ErrInvalidUTF8) {
				t.Fatalf("ValidateEmail(NormalizeEmail(%q)) = %v, want ErrInvalidUTF8", s, err)
			}
		}
		err := schema.ValidateEmail(s)
		if err != nil {
			checkRule(t, s, err)
			return
		}
		// What is accepted is stored as is: normalised, bounded, one bare address.
		if n != s {
			t.Fatalf("ValidateEmail accepted %q, which normalises to %q", s, n)
		}
		if len(s) > schema.MaxEmailBytes || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			t.Fatalf("ValidateEmail accepted %q", s)
		}
		addr, perr := mail.ParseAddress(s)
		if perr != nil || addr.Address != s || addr.Name != "" {
			t.Fatalf("ValidateEmail accepted %q, which net/mail reads as %v, %v", s, addr, perr)
		}
		domain := s[strings.LastIndexByte(s, '@')+1:]
		if !strings.Contains(domain, ".") {
			t.Fatalf("ValidateEmail accepted %q, whose domain has no dot", s)
		}
	})
}

func FuzzValidateMetadata(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"model":"gpt","prompt_tokens":3}`,
		`{"extra":{"a":"\u0000"}}`,
		`{"extra":{"\u0000":1}}`,
		`{"extra":{"a":[1,"b",{"c":null}]}}`,
		`{"attachments":[{"url":"https://x","name":"a\u0000"}]}`,
		`{"extra":{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var md schematype.MessageMetadata
		if json.Unmarshal(b, &md) != nil {
			return
		}
		err := schema.ValidateMetadata(md)
		if err != nil {
			checkRule(t, "", err)
			return
		}
		enc, err := json.Marshal(md)
		if err != nil {
			t.Fatalf("accepted metadata does not encode: %v", err)
		}
		if len(enc) > schema.MaxMetadataBytes {
			t.Fatalf("accepted metadata of %d bytes", len(enc))
		}
		// PostgreSQL's jsonb refuses \u0000; the encoder writes a NUL that way
		// and a backslash as \\, so an odd run of backslashes before u0000 is one.
		if i := strings.Index(string(enc), `\u0000`); i >= 0 {
			j := i
			for j > 0 && enc[j-1] == '\\' {
				j--
			}
			if (i-j)%2 == 0 {
				t.Fatalf("accepted metadata with a NUL: %s", enc)
			}
		}
	})
}
