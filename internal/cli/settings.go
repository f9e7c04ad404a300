package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chatdb/chatdb/database"
)

// settings are the root command's flags, shared by every command that opens a
// database. PersistentPreRunE puts them in the command's context, where openDB
// finds them.
type settings struct {
	logLevel   string
	logQueries bool
	driver     string

	// logger writes to the command's stderr; built from logLevel and logQueries.
	logger *slog.Logger
}

type settingsKey struct{}

// addRootFlags registers the root's persistent flags on c and returns the
// settings they fill.
func addRootFlags(c *cobra.Command) *settings {
	s := &settings{}
	f := c.PersistentFlags()
	f.StringVar(&s.logLevel, "log-level", "", "log level: debug, info, warn or error (default warn, or $CHATDB_LOG_LEVEL)")
	f.BoolVar(&s.logQueries, "log-queries", false, "log each SQL statement, never its arguments, at debug level (or $CHATDB_LOG_QUERIES=1)")
	f.StringVar(&s.driver, "driver", "", "PostgreSQL driver: pgx or pq (default pgx, or $CHATDB_PG_DRIVER)")
	return s
}

// prepare checks the root flags and builds the logger; it runs before every
// command. stderr is where log lines go.
func (s *settings) prepare(c *cobra.Command, stderr io.Writer) error {
	level, source := s.logLevel, "--log-level"
	if level == "" {
		level, source = os.Getenv("CHATDB_LOG_LEVEL"), "CHATDB_LOG_LEVEL"
	}
	explicit := level != ""
	if level == "" {
		level = "warn"
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("%s %q: want debug, info, warn or error", source, level)}
	}
	// Statements are logged at debug level; asking for them without a level means
	// wanting to see them.
	if s.logQueries && !explicit {
		l = slog.LevelDebug
	}
	switch strings.ToLower(s.driver) {
	case "", database.DriverPgx, database.DriverPQ:
		s.driver = strings.ToLower(s.driver)
	default:
		return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--driver %q: want %s or %s", s.driver, database.DriverPgx, database.DriverPQ)}
	}
	s.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l}))
	c.SetContext(context.WithValue(c.Context(), settingsKey{}, s))
	return nil
}

// settingsFrom returns the settings in ctx, or defaults (nothing logged) when
// ctx has none.
func settingsFrom(ctx context.Context) *settings {
	if s, ok := ctx.Value(settingsKey{}).(*settings); ok {
		return s
	}
	return &settings{logger: slog.New(slog.DiscardHandler)}
}

// config returns the database configuration a command runs with: the
// environment (database.ConfigFromEnv), then url when not empty, then the root
// flags.
func config(ctx context.Context, url string) (database.Config, error) {
	cfg, err := database.ConfigFromEnv()
	if err != nil {
		return database.Config{}, err
	}
	if url != "" {
		cfg.URL = url
	}
	s := settingsFrom(ctx)
	if s.driver != "" {
		cfg.Driver = s.driver
	}
	if s.logQueries {
		cfg.LogQueries = true
	}
	cfg.Logger = s.logger
	return cfg, nil
}

// urlFlag registers the --url flag shared by the commands that open a database.
func urlFlag(f *pflag.FlagSet, dst *string) {
	f.StringVar(dst, "url", "", "database URL (default: $DATABASE_URL, else the SQLite file chatdb.db)")
}
