package cli

import (
	"errors"
	"strings"

	"github.com/chatdb/chatdb/database"
)

// connectHint is what to do when a PostgreSQL server cannot be reached.
const connectHint = "is the server running and reachable? Check --url or DATABASE_URL (user, password, host, port, database, sslmode)"

// hint returns what to do about err, for the line Main prints under it, or ""
// when the error says it already.
func hint(err error) string {
	var ce *database.ConnectError
	var cfg *database.ConfigError
	var de *dirError
	var nf *noFileError
	switch {
	case errors.As(err, &nf):
		return "create it with `chatdb demo` or `chatdb migrate apply`, or point --url or DATABASE_URL at the right file"
	case errors.As(err, &de):
		return "run chatdb from the repository's root, where migrations/ is, or pass --dir: the migrations root or one dialect's directory (file://migrations/postgres)"
	case errors.As(err, &ce):
		if strings.HasPrefix(ce.URL, "sqlite://") {
			return "check that the SQLite file's directory exists and is writable; --url or DATABASE_URL names the file"
		}
		return connectHint + "; `chatdb doctor` checks step by step"
	case errors.As(err, &cfg):
		return "check --url or DATABASE_URL: postgres://user:pass@host:5432/db?sslmode=disable, sqlite://path or a file path"
	case errors.Is(err, database.ErrNotClean):
		return "the database holds tables that no migration created; point --url at an empty database, or at one chatdb migrated"
	case errors.Is(err, database.ErrLockTimeout):
		return "another migration is still running: let it finish and run apply again, or wait longer with --lock-timeout (0 waits until the lock is free)"
	case errors.Is(err, database.ErrTimeout):
		return "the database did not answer in time: another process may hold the SQLite file or the rows; try again, or check `chatdb doctor`"
	}
	return ""
}
