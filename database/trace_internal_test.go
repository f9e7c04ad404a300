package database

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPostgresAttributes: the server and database of a pool's spans, from
// each form of URL; none for a multi-host one, whose server is whichever
// answers.
func TestPostgresAttributes(t *testing.T) {
	for url, want := range map[string]map[string]string{
		"postgres://u:secret@db.example.com:6543/chat?sslmode=disable":      {"server.address": "db.example.com", "server.port": "6543", "db.namespace": "chat"},
		"postgres://u@db.example.com/chat":                                  {"server.address": "db.example.com", "db.namespace": "chat"},
		"postgres://u@[::1]:5433/chat":                                      {"server.address": "::1", "server.port": "5433", "db.namespace": "chat"},
		"host=10.0.0.5 port=5434 dbname=chat user=u password=secret":        {"server.address": "10.0.0.5", "server.port": "5434", "db.namespace": "chat"},
		"postgres://u@h1:5432,h2:5432/chat?target_session_attrs=read-write": {"db.namespace": "chat"},
	} {
		tg, err := parseURL(url)
		require.NoError(t, err, url)
		got := map[string]string{}
		for _, kv := range postgresAttributes(tg) {
			got[string(kv.Key)] = kv.Value.Emit()
			assert.NotContains(t, kv.Value.Emit(), "secret", url)
		}
		assert.Equal(t, "postgresql", got["db.system.name"], url)
		for _, k := range []string{"server.address", "server.port", "db.namespace"} {
			assert.Equal(t, want[k], got[k], "%s: %s", url, k)
		}
	}
}
