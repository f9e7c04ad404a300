package dbtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatdb/chatdb/database"
)

// PgBouncer is a throwaway PgBouncer in transaction mode (pool_mode =
// transaction) on a free loopback port, in front of one PostgreSQL server:
// any database of the server is reached under its own name, as the user the
// server's URL names, with no password asked of clients (auth_type = trust).
// Tests use it through the PGXBouncer and PQBouncer targets, or start one of
// their own with StartPgBouncer.
type PgBouncer struct {
	dir     string
	port    int
	logFile string
	cmd     *exec.Cmd
	// exited is closed when the process has ended; err is then its Wait's.
	exited chan struct{}
	err    error

	closeOnce sync.Once
}

// StartPgBouncer starts a PgBouncer in transaction mode in front of the
// PostgreSQL server that serverURL names (its host, port, user and password;
// the database does not matter), and stops it when the test ends. It skips
// the test (fails it, with CHATDB_TEST_REQUIRE_POSTGRES=1) when PgBouncer is
// not installed.
func StartPgBouncer(t testing.TB, serverURL string) *PgBouncer {
	t.Helper()
	b, err := NewPgBouncer(serverURL)
	if err != nil {
		if errors.Is(err, errNoPgBouncer) && os.Getenv("CHATDB_TEST_REQUIRE_POSTGRES") != "1" {
			t.Skipf("dbtest: %v", err)
		}
		t.Fatalf("dbtest: start pgbouncer: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// errNoPgBouncer is returned when the pgbouncer binary cannot be found.
var errNoPgBouncer = errors.New("pgbouncer is not installed (Debian: apt-get install pgbouncer)")

// pgbouncerBin finds the pgbouncer binary: on PATH, else where Debian puts
// it (/usr/sbin, not on every user's PATH).
func pgbouncerBin() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", errNoPgBouncer
}

// NewPgBouncer is StartPgBouncer for code without a test, such as a
// benchmark's TestMain: the caller closes it. A port taken between choosing
// it and PgBouncer's binding it is tried again.
func NewPgBouncer(serverURL string) (*PgBouncer, error) {
	bin, err := pgbouncerBin()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(serverURL)
	if err != nil || !database.IsPostgresURL(serverURL) {
		return nil, errors.New("not a postgres:// URL")
	}
	for attempt := 1; ; attempt++ {
		b, err := startPgBouncer(bin, u)
		if err == nil || attempt == 3 {
			return b, err
		}
	}
}

// serverUser returns the user u logs in as, as the drivers would choose it.
func serverUser(u *url.URL) string {
	if name := u.User.Username(); name != "" {
		return name
	}
	if name := u.Query().Get("user"); name != "" {
		return name
	}
	if name := os.Getenv("PGUSER"); name != "" {
		return name
	}
	if me, err := user.Current(); err == nil {
		return me.Username
	}
	return "postgres"
}

// connValue checks a host or port for PgBouncer's [databases] section,
// which takes them unquoted: a name, an address or a socket directory.
func connValue(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, " '\"=;#\n\\") {
		return "", fmt.Errorf("dbtest: pgbouncer: cannot use host or port %q", s)
	}
	return s, nil
}

func startPgBouncer(bin string, u *url.URL) (*PgBouncer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chatdb-pgbouncer-")
	if err != nil {
		return nil, err
	}
	b := &PgBouncer{dir: dir, port: port, logFile: filepath.Join(dir, "pgbouncer.log"), exited: make(chan struct{})}
	fail := func(err error) (*PgBouncer, error) {
		os.RemoveAll(dir)
		return nil, err
	}

	q := u.Query()
	host, serverPort := u.Hostname(), u.Port()
	if h := q.Get("host"); h != "" {
		host = h
	}
	if p := q.Get("port"); p != "" {
		serverPort = p
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if serverPort == "" {
		serverPort = "5432"
	}
	sslmode := q.Get("sslmode")
	if sslmode == "" {
		sslmode = "prefer"
	}
	name := serverUser(u)
	password, _ := u.User.Password()
	if p := q.Get("password"); p != "" {
		password = p
	}

	// The server's password, if any, is in the auth file, where PgBouncer
	// takes it to log in to the server; clients give none (trust). The
	// directory is readable only by the user PgBouncer runs as.
	users := fmt.Sprintf("%q %q\n", name, password)
	if host, err = connValue(host); err != nil {
		return fail(err)
	}
	if serverPort, err = connValue(serverPort); err != nil {
		return fail(err)
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
reserve_pool_size = 0
; Every test database has a pool of its own; its server connections close
; soon after the test, so that they do not hold the server's slots.
server_idle_timeout = 10
server_tls_sslmode = %s
logfile = %s
pidfile = %s
log_connections = 0
log_disconnections = 0
`, host, serverPort, port, filepath.Join(dir, "users.txt"), sslmode, b.logFile, filepath.Join(dir, "pgbouncer.pid"))
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), []byte(users), 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o600); err != nil {
		return fail(err)
	}

	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	// If the test process dies without its cleanups, PgBouncer goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// PgBouncer refuses to run as root: run it as the postgres system user,
	// as the throwaway clusters are.
	if os.Geteuid() == 0 {
		pu, err := user.Lookup("postgres")
		if err != nil {
			return fail(errors.New("running as root and there is no postgres user to run pgbouncer as"))
		}
		uid, _ := strconv.Atoi(pu.Uid)
		gid, _ := strconv.Atoi(pu.Gid)
		for _, p := range []string{dir, filepath.Join(dir, "users.txt"), filepath.Join(dir, "pgbouncer.ini")} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fail(err)
			}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("pgbouncer: %w", err))
	}
	b.cmd = cmd
	go func() {
		b.err = cmd.Wait()
		close(b.exited)
	}()
	// Ready once it accepts connections; gone if it exited (a port taken).
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.exited:
			log := b.log()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer exited: %v\n%s", b.err, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log := b.log()
			b.Close()
			return nil, fmt.Errorf("pgbouncer did not accept connections within 15s\n%s", log)
		}
	}
}

// Addr returns PgBouncer's "127.0.0.1:port".
func (b *PgBouncer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// URL returns dbURL, a postgres:// URL of the server PgBouncer is in front
// of, with PgBouncer's host and port and sslmode=disable (PgBouncer takes no
// TLS from clients here). The user, database and other parameters stay.
func (b *PgBouncer) URL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	u.Host = b.Addr()
	q := u.Query()
	q.Del("host")
	q.Del("port")
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String()
}

// Config returns a database.Config for the database that direct names on
// the server, through PgBouncer with driver: Pooler is
// database.PoolerTransaction, and MigrationURL is direct, so that Migrate
// works.
func (b *PgBouncer) Config(direct, driver string) database.Config {
	return database.Config{URL: b.URL(direct), Driver: driver, Pooler: database.PoolerTransaction, MigrationURL: direct}
}

func (b *PgBouncer) log() string {
	data, _ := os.ReadFile(b.logFile)
	return string(data)
}

// Close stops PgBouncer at once (SIGTERM: its clients are disconnected) and
// removes its directory. It is safe to call more than once.
func (b *PgBouncer) Close() error {
	b.closeOnce.Do(func() {
		if b.cmd != nil && b.cmd.Process != nil {
			b.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-b.exited:
			case <-time.After(10 * time.Second):
				b.cmd.Process.Kill()
				<-b.exited
			}
		}
		os.RemoveAll(b.dir)
	})
	return nil
}

// --- the PgBouncer targets ---

// MainOption configures Main.
type MainOption func(*mainOptions)

type mainOptions struct {
	pgbouncer bool
}

// WithPgBouncer makes Run and RunPostgres run every test of the process on
// PGXBouncer and PQBouncer too, after the other targets: through one
// PgBouncer in transaction mode that dbtest starts, on the first test that
// needs it, in front of the PostgreSQL server the tests use, and stops when
// Main returns. CHATDB_TEST_PGBOUNCER=0 leaves those targets out.
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m, dbtest.WithPgBouncer())) }
func WithPgBouncer() MainOption {
	return func(o *mainOptions) { o.pgbouncer = true }
}

// pooledTargets are the targets through PgBouncer, in the order Run runs
// them.
var pooledTargets = []Target{PGXBouncer, PQBouncer}

// withPooled says Main was given WithPgBouncer and the environment does
// not turn it off. Set before the tests run, read only afterwards.
var withPooled bool

// applyMainOptions is Main's first step.
func applyMainOptions(opts []MainOption) {
	var o mainOptions
	for _, opt := range opts {
		opt(&o)
	}
	withPooled = o.pgbouncer && os.Getenv("CHATDB_TEST_PGBOUNCER") != "0"
}

// runTargets are the targets Run runs.
func runTargets() []Target {
	if !withPooled {
		return Targets
	}
	return append(append([]Target(nil), Targets...), pooledTargets...)
}

var processBouncer struct {
	once sync.Once
	b    *PgBouncer
	err  error
}

// bouncer returns the process's PgBouncer in front of srv, starting it on
// the first call; Main stops it. It skips the test as StartPgBouncer does.
func bouncer(t testing.TB, srv *pgServer) *PgBouncer {
	t.Helper()
	processBouncer.once.Do(func() {
		processBouncer.b, processBouncer.err = NewPgBouncer(srv.url(srv.adminDB))
		if processBouncer.err == nil {
			cleanups.add(func() { processBouncer.b.Close() })
		}
	})
	if err := processBouncer.err; err != nil {
		if errors.Is(err, errNoPgBouncer) && os.Getenv("CHATDB_TEST_REQUIRE_POSTGRES") != "1" {
			t.Skipf("dbtest: %v", err)
		}
		t.Fatalf("dbtest: start pgbouncer: %v", err)
	}
	return processBouncer.b
}

// pooledConfig returns the Config of target, a PgBouncer one, for the
// database direct names.
func pooledConfig(t testing.TB, target Target, direct string) database.Config {
	t.Helper()
	return bouncer(t, server(t)).Config(direct, target.Driver())
}
