package schema_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
)

// FuzzValidateMetadataFields puts arbitrary strings, invalid UTF-8 and NUL
// bytes included, in every text field of a message's metadata. (Metadata
// decoded from JSON, as FuzzValidateMetadata makes it, never holds invalid
// UTF-8: the decoder replaces it.) Metadata is accepted exactly when every
// string is valid text and the whole fits the limit, and what is accepted
// survives the trip through JSON unchanged, as the database would return it.
func FuzzValidateMetadataFields(f *testing.F) {
	f.Add("gpt", "key", "value", "https://example.com/a.png", "a.png", "image/png", 3)
	f.Add("", "", "", "", "", "", 0)
	f.Add("a\x00b", "k", "v", "u", "n", "t", 1)
	f.Add("m", "\x00", "v", "u", "n", "t", 1)
	f.Add("m", "k", "\xff", "u", "n", "t", 1)
	f.Add("m", "k", "v", "caf\xc3", "n", "t", 1)
	f.Add("m", "k", "v", "u", "\xed\xa0\x80", "t", 1)
	f.Add("m", "k", "v", "u", "n", "\u0000", 1)
	f.Add("'; DROP TABLE messages; --", "%_", `back\slash`, "$1", "?", `"`, 2)
	f.Add(strings.Repeat("m", schema.MaxMetadataBytes), "k", "v", "u", "n", "t", 1)
	f.Fuzz(func(t *testing.T, model, key, value, url, name, contentType string, n int) {
		n = min(max(n, 0), 64)
		md := schematype.MessageMetadata{
			Model: model,
			Extra: map[string]any{key: value, key + "/nested": map[string]any{key: []any{value, 1.5, true, nil}}},
		}
		for range n {
			md.Attachments = append(md.Attachments, schematype.Attachment{URL: url, Name: name, ContentType: contentType})
		}
		err := schema.ValidateMetadata(md)
		text := true
		for _, s := range []string{model, key, value} {
			text = text && schema.ValidateText(s) == nil
		}
		if n > 0 {
			for _, s := range []string{url, name, contentType} {
				text = text && schema.ValidateText(s) == nil
			}
		}
		if !text {
			if err == nil {
				t.Fatalf("accepted metadata with invalid text: %+v", md)
			}
			checkRule(t, "", err)
			return
		}
		enc, jerr := json.Marshal(md)
		if jerr != nil {
			t.Fatalf("valid text does not encode: %v", jerr)
		}
		if fits := len(enc) <= schema.MaxMetadataBytes; fits != (err == nil) {
			t.Fatalf("ValidateMetadata = %v for %d bytes of JSON", err, len(enc))
		}
		if err != nil {
			checkRule(t, "", err)
			return
		}
		var back schematype.MessageMetadata
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("accepted metadata does not decode: %v", err)
		}
		if back.Model != model || back.Extra[key] != value {
			t.Fatalf("accepted metadata changed on the way: %q %q, then %q %q", model, value, back.Model, back.Extra[key])
		}
		for _, a := range back.Attachments {
			if a.URL != url || a.Name != name || a.ContentType != contentType {
				t.Fatalf("accepted attachment changed on the way: %+v", a)
			}
		}
		if !utf8.Valid(enc) {
			t.Fatalf("accepted metadata encodes to invalid UTF-8")
		}
	})
}
