package dbtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Cluster is a throwaway PostgreSQL cluster: initdb into a temporary directory,
// a server on a free loopback port, trust authentication for user postgres. Tests
// that stop, restart or break a server use one of their own and never touch the
// shared server.
type Cluster struct {
	dir     string
	port    int
	bin     string
	runAs   string // user to run the server as when we are root
	logFile string

	mu      sync.Mutex
	running bool
}

// StartCluster starts a throwaway cluster that is stopped and removed when the
// test ends. It skips the test (fails it, with CHATDB_TEST_REQUIRE_POSTGRES=1) when
// the PostgreSQL server binaries are not installed.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := newCluster()
	if err != nil {
		if os.Getenv("CHATDB_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("dbtest: cannot start a throwaway cluster: %v", err)
		}
		t.Skipf("dbtest: cannot start a throwaway cluster: %v", err)
	}
	t.Cleanup(c.remove)
	if err := c.Start(); err != nil {
		t.Fatalf("dbtest: start cluster: %v\n%s", err, c.log())
	}
	return c
}

// startProcessCluster starts the cluster used, when no other server can be had,
// by every test of the process; Main stops it.
func startProcessCluster() (*Cluster, error) {
	c, err := newCluster()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		c.remove()
		return nil, err
	}
	cleanups.add(c.remove)
	return c, nil
}

// serverBinDir finds the newest installed PostgreSQL's server binaries.
func serverBinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := string(trimNL(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("no initdb found (install the PostgreSQL server package)")
	}
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi > vj
	})
	return filepath.Dir(matches[0]), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func newCluster() (*Cluster, error) {
	bin, err := serverBinDir()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chatdb-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, port: port, bin: bin, logFile: filepath.Join(dir, "server.log")}
	// PostgreSQL refuses to run as root; run it as the postgres system user then.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, errors.New("running as root and there is no postgres user to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.runAs = "postgres"
	}
	data := filepath.Join(dir, "data")
	out, err := c.command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	if c.runAs != "" {
		return exec.Command("runuser", append([]string{"-u", c.runAs, "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// URL returns the URL of the cluster's postgres database.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Port returns the port the cluster listens on.
func (c *Cluster) Port() int { return c.port }

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200", c.port, c.dir)
	out, err := c.command(filepath.Join(c.bin, "pg_ctl"), "start", "-w", "-t", "60", "-D", filepath.Join(c.dir, "data"), "-l", c.logFile, "-o", opts).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	c.running = true
	return nil
}

// Stop stops the server with the given shutdown mode: "fast" (roll back and
// disconnect every session), "immediate" (abort, as a crash would) or "smart".
func (c *Cluster) Stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	out, err := c.command(filepath.Join(c.bin, "pg_ctl"), "stop", "-w", "-t", "60", "-m", mode, "-D", filepath.Join(c.dir, "data")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	c.running = false
	return nil
}

// Restart stops the server fast and starts it again at once.
func (c *Cluster) Restart() error {
	if err := c.Stop("fast"); err != nil {
		return err
	}
	return c.Start()
}

func (c *Cluster) log() string {
	b, _ := os.ReadFile(c.logFile)
	return string(b)
}

func (c *Cluster) remove() {
	if err := c.Stop("immediate"); err != nil {
		// Give the server a moment and try once more; a leaked server would keep
		// its port and directory until the machine restarts.
		time.Sleep(time.Second)
		c.Stop("immediate")
	}
	os.RemoveAll(c.dir)
}
