package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/internal/cli"
)

// commands lists every command under c, c included, except cobra's own (help,
// completion).
func commands(c *cobra.Command) []*cobra.Command {
	if c.Name() == "help" || c.Name() == "completion" {
		return nil
	}
	all := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		all = append(all, commands(sub)...)
	}
	return all
}

func TestHelpEveryCommand(t *testing.T) {
	t.Parallel()
	for _, c := range commands(cli.NewRoot()) {
		path := strings.Fields(c.CommandPath())[1:]
		t.Run(strings.Join(append([]string{"chatdb"}, path...), " "), func(t *testing.T) {
			t.Parallel()
			for _, flag := range []string{"--help", "-h"} {
				code, stdout, stderr := run(t, append(path, flag)...)
				require.Equal(t, cli.ExitOK, code, stderr)
				require.Empty(t, stderr)
				require.Contains(t, stdout, "Usage:")
				if !c.HasSubCommands() || !c.HasParent() {
					// Commands that do something show how; groups list their commands.
					require.Contains(t, stdout, "Examples:", "every command shows examples")
				}
				require.Contains(t, stdout, "--log-level", "the root flags are listed")
			}
			require.NotEmpty(t, c.Short, "a one-line summary for the parent's list")
		})
	}
}

func TestHelpRoot(t *testing.T) {
	t.Parallel()
	code, stdout, _ := run(t, "--help")
	require.Equal(t, cli.ExitOK, code)
	for _, want := range []string{"demo", "seed", "doctor", "migrate", "DATABASE_URL", "CHATDB_PG_DRIVER", "Exit codes:", "3  the command ran and found something"} {
		require.Contains(t, stdout, want)
	}
	// No arguments prints the same help.
	code, bare, _ := run(t)
	require.Equal(t, cli.ExitOK, code)
	require.Equal(t, stdout, bare)
}

func TestHelpUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"doctor", "extra"}, "takes no arguments"},
		{[]string{"demo", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"--log-level", "loud", "doctor"}, `--log-level "loud": want debug, info, warn or error`},
		{[]string{"--driver", "odbc", "doctor"}, `--driver "odbc": want pgx or pq`},
		{[]string{"seed", "--users", "-1"}, "must not be negative"},
		{[]string{"seed", "--users", "0", "--chats", "3"}, "--chats needs at least one user"},
		{[]string{"seed", "--chats", "0", "--messages", "3"}, "--messages needs at least one chat"},
		{[]string{"seed", "--batch", "0"}, "--batch must be at least 1"},
		{[]string{"seed", "--progress", "fancy"}, `--progress "fancy"`},
		{[]string{"seed", "--users", "many"}, `invalid argument "many" for "--users"`},
		{[]string{"doctor", "--wait", "forever"}, `invalid argument "forever" for "--wait"`},
	} {
		code, stdout, stderr := run(t, tc.args...)
		require.Equal(t, cli.ExitUsage, code, "%v: %s", tc.args, stderr)
		require.Empty(t, stdout, "%v", tc.args)
		require.Contains(t, stderr, tc.want, "%v", tc.args)
		require.Contains(t, stderr, "--help' for usage", "%v", tc.args)
	}
}

// TestREADMEBuildsForExitCodes: `go run` turns exit status 3 (attention)
// into 1, so the README runs chatdb through go run only for the demo, and
// shows how to build it for everything whose exit status matters.
func TestREADMEBuildsForExitCodes(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	readme := string(b)
	for _, m := range regexp.MustCompile(`go run \./cmd/chatdb(\s+[a-z-]+)?`).FindAllStringSubmatch(readme, -1) {
		require.Equal(t, " demo", m[1], "README: %q: build chatdb instead, go run loses its exit status", m[0])
	}
	require.Contains(t, readme, "go install ./cmd/chatdb")
	require.Contains(t, readme, "go build -o chatdb ./cmd/chatdb")
}
