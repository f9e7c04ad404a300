// Package schematype holds the Go types of chatdb's JSON columns. It is a package of
// its own so that the generated ent code can use them without importing the schema
// package, which imports generated code itself (hooks, privacy).
package schematype

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
)

// MessageMetadata is what a message carries beside its content: which model wrote it
// and what it cost, and the files attached to it. It is stored as JSON (jsonb on
// PostgreSQL).
type MessageMetadata struct {
	// Model is the name of the model that wrote an assistant message.
	Model string `json:"model,omitempty"`
	// PromptTokens and CompletionTokens count the tokens a model call used.
	PromptTokens     int `json:"prompt_tokens,omitempty"`
	CompletionTokens int `json:"completion_tokens,omitempty"`
	// Attachments are files attached to the message, stored elsewhere.
	Attachments []Attachment `json:"attachments,omitempty"`
	// Extra holds application-defined values.
	Extra map[string]any `json:"extra,omitempty"`
}

// Attachment describes a file attached to a message. The file itself lives in object
// storage; the database keeps where it is and what it is.
type Attachment struct {
	URL         string `json:"url"`
	Name        string `json:"name,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size,omitempty"`
}

// IsZero reports whether m holds nothing.
func (m MessageMetadata) IsZero() bool {
	return m.Model == "" && m.PromptTokens == 0 && m.CompletionTokens == 0 && len(m.Attachments) == 0 && len(m.Extra) == 0
}

// Value encodes m as JSON text. It returns a string, not []byte: lib/pq with
// binary_parameters=yes sends []byte arguments in binary format, which a jsonb
// column refuses ("unsupported jsonb version number"), while text is accepted by
// jsonb, json and SQLite alike.
func (m MessageMetadata) Value() (driver.Value, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("schematype: encode message metadata: %w", err)
	}
	return string(b), nil
}

// Scan decodes JSON text or bytes into m; NULL gives the zero value.
func (m *MessageMetadata) Scan(src any) error {
	*m = MessageMetadata{}
	var b []byte
	switch v := src.(type) {
	case nil:
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("schematype: scan message metadata from %T", src)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, m); err != nil {
		return errors.New("schematype: stored message metadata is not valid JSON")
	}
	return nil
}
