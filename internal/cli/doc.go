// Package cli implements the chatdb command. cmd/chatdb only calls Main, so that
// every command runs in-process, with its output captured, in tests:
//
//	var out, errOut bytes.Buffer
//	code := cli.Main(ctx, []string{"migrate", "apply", "--dry-run"}, &out, &errOut)
//
// Each command group lives in a file of its own (demo.go, seed.go, doctor.go,
// migrate.go for "migrate ...") and is added to the root command in newRoot.
// The root's flags (--log-level, --log-queries, --driver) are in settings.go;
// openDB applies them, with the environment, to every command that opens a
// database. Main's exit codes are ExitOK, ExitError, ExitUsage and
// ExitAttention.
package cli
