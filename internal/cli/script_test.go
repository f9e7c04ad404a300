package cli_test

import (
	"context"
	"errors"
	"hash/fnv"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// scripts returns the testscript files in testdata/script whose names start
// with prefix.
func scripts(t *testing.T, prefix string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "script", prefix+"*.txtar"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no scripts named %s*", prefix)
	return files
}

// The scripts run `chatdb` as the test binary itself (see TestMain), in a fresh
// directory and an environment of testscript's: no DATABASE_URL, no CHATDB_*,
// as on a newcomer's machine. Scripts that need PostgreSQL get the variables
// of setPostgres.

// setPostgres gives a script the PostgreSQL server u (any URL the README
// allows, as any user):
//
//	$PGURL       u with the password hunter2, which the server's trust
//	             authentication ignores and which must never be printed
//	$PGURL_NOPW  u without a password
//	$DBUSER      the user name, for patterns: ${DBUSER@R}
//	$PGURL_NODB  u naming the database chatdb_no_such_db, which does not exist
//	$PGURL_NOROLE  u naming the user chatdb_no_such_role, which does not exist
//	$PGURL_NOSSLMODE  u without sslmode
func setPostgres(t *testing.T, env *testscript.Env, u string) {
	env.Setenv("PGURL", withPassword(t, u, "hunter2"))
	env.Setenv("PGURL_NOPW", withPassword(t, u, ""))
	p, err := url.Parse(withPassword(t, u, ""))
	require.NoError(t, err)
	env.Setenv("DBUSER", p.User.Username())
	nodb := *p
	nodb.Path = "/chatdb_no_such_db"
	env.Setenv("PGURL_NODB", nodb.String())
	norole := *p
	norole.User = url.User("chatdb_no_such_role")
	env.Setenv("PGURL_NOROLE", norole.String())
	nossl := *p
	q := nossl.Query()
	q.Del("sslmode")
	nossl.RawQuery = q.Encode()
	env.Setenv("PGURL_NOSSLMODE", nossl.String())
}

// scriptCmds are the commands every script may use besides testscript's own:
//
//	lock hold URL   take the migration lock of the database URL (a path is
//	                relative to the script's directory) as another migrator
//	                would: PostgreSQL's advisory lock on a session of its own,
//	                SQLite's write lock in an open transaction
//	lock release    release the locks lock hold took (the script's end does too)
//	fakepg MODE     start a PostgreSQL server that refuses every connection in
//	                one way, at $FAKEPG (see fakePG)
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"fakepg": fakePG,
	"lock": func(ts *testscript.TestScript, neg bool, args []string) {
		held := ts.Value(heldLocksKey{}).(*heldLocks)
		switch {
		case neg || len(args) == 0:
		case args[0] == "hold" && len(args) == 2:
			u := args[1]
			if !isPostgres(u) {
				u = ts.MkAbs(u)
			}
			release, err := holdMigrationLock(u)
			ts.Check(err)
			held.release = append(held.release, release)
			return
		case args[0] == "release" && len(args) == 1:
			ts.Check(held.releaseAll())
			return
		}
		ts.Fatalf("usage: lock hold URL | lock release")
	},
}

// heldLocks are the locks a script's `lock hold` took.
type heldLocks struct{ release []func() error }

type heldLocksKey struct{}

func (h *heldLocks) releaseAll() error {
	var errs []error
	for _, r := range h.release {
		errs = append(errs, r())
	}
	h.release = nil
	return errors.Join(errs...)
}

// scriptSetup prepares what scriptCmds need, and sets $MIGRATIONS to the
// repository's migrations root (scripts must not write there); every script
// group runs it.
func scriptSetup(env *testscript.Env) {
	env.Setenv("MIGRATIONS", repoMigrations)
	held := &heldLocks{}
	env.Values[heldLocksKey{}] = held
	env.Defer(func() {
		if err := held.releaseAll(); err != nil {
			env.T().Fatal(err)
		}
	})
}

// repoMigrations is the absolute path of the repository's migrations root.
var repoMigrations = func() string {
	p, err := filepath.Abs(filepath.Join("..", "..", "migrations"))
	if err != nil {
		panic(err)
	}
	return p
}()

func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// holdMigrationLock takes the migration lock of the database u and returns
// what releases it. The advisory lock's key is the Atlas CLI's, computed here
// independently of the database package: FNV-1 32 of "atlas_migrate_execute".
func holdMigrationLock(u string) (func() error, error) {
	ctx := context.Background()
	db, err := database.Open(ctx, database.Config{URL: u})
	if err != nil {
		return nil, err
	}
	if db.Dialect() == database.SQLite {
		tx, err := db.SQL().BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
		if err != nil {
			return nil, errors.Join(err, db.Close())
		}
		return func() error { return errors.Join(tx.Rollback(), db.Close()) }, nil
	}
	h := fnv.New32()
	h.Write([]byte("atlas_migrate_execute"))
	key := int64(h.Sum32())
	conn, err := db.SQL().Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", key)
	}
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return func() error {
		_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", key)
		return errors.Join(err, conn.Close(), db.Close())
	}, nil
}

// runServerless runs the scripts named prefix*.txtar, which need no server.
func runServerless(t *testing.T, prefix string) {
	t.Helper()
	testscript.Run(t, testscript.Params{
		Files:               scripts(t, prefix),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			scriptSetup(env)
			return nil
		},
		Cmds: scriptCmds,
	})
}

// TestScriptSQLite runs sqlite_*.txtar.
func TestScriptSQLite(t *testing.T) {
	t.Parallel()
	runServerless(t, "sqlite_")
}

// TestScriptConnect runs connect_*.txtar: chatdb failing to connect, to
// fakepg servers or to none.
func TestScriptConnect(t *testing.T) {
	t.Parallel()
	runServerless(t, "connect_")
}

// TestScriptPostgres runs postgres_*.txtar, each on an empty database of its
// own, made before the scripts start so that a missing server skips (or, in CI,
// fails) this test rather than a script.
func TestScriptPostgres(t *testing.T) {
	t.Parallel()
	files := scripts(t, "postgres_")
	var mu sync.Mutex
	var urls []string
	for range files {
		urls = append(urls, dbtest.EmptyConfig(t, dbtest.PGX).URL)
	}
	testscript.Run(t, testscript.Params{
		Files:               files,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			mu.Lock()
			defer mu.Unlock()
			setPostgres(t, env, urls[0])
			urls = urls[1:]
			scriptSetup(env)
			return nil
		},
		Cmds: scriptCmds,
	})
}

// TestScriptCluster runs cluster_*.txtar against a throwaway PostgreSQL cluster
// that the scripts stop and start with the pg command:
//
//	pg stop            stop the server (fast shutdown)
//	pg start           start it and wait until it accepts connections
//	pg start-after D   start it D (a Go duration) from now, in the background
//
// $PGURL names the cluster's postgres database. The scripts run one at a time:
// they share the cluster.
func TestScriptCluster(t *testing.T) {
	cluster := dbtest.StartCluster(t)
	var pending sync.WaitGroup
	t.Cleanup(pending.Wait)
	for _, file := range scripts(t, "cluster_") {
		testscript.Run(t, testscript.Params{
			Files:               []string{file},
			RequireExplicitExec: true,
			Setup: func(env *testscript.Env) error {
				setPostgres(t, env, cluster.URL())
				return nil
			},
			Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
				"pg": func(ts *testscript.TestScript, neg bool, args []string) {
					if neg || len(args) == 0 {
						ts.Fatalf("usage: pg stop | start | start-after DURATION")
					}
					switch args[0] {
					case "stop":
						ts.Check(cluster.Stop("fast"))
					case "start":
						ts.Check(cluster.Start())
					case "start-after":
						if len(args) != 2 {
							ts.Fatalf("usage: pg start-after DURATION")
						}
						d, err := time.ParseDuration(args[1])
						ts.Check(err)
						pending.Add(1)
						go func() {
							defer pending.Done()
							time.Sleep(d)
							if err := cluster.Start(); err != nil {
								t.Errorf("pg start-after: %v", err)
							}
						}()
					default:
						ts.Fatalf("pg: unknown subcommand %q", strings.Join(args, " "))
					}
				},
			},
		})
	}
}
