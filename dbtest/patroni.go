package dbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// PatroniOptions configures StartPatroni.
type PatroniOptions struct {
	// Nodes is the number of PostgreSQL nodes. Zero means 3: a primary and two
	// standbys, the smallest cluster that keeps a synchronous standby after
	// losing one node.
	Nodes int
	// Sync turns on Patroni's synchronous_mode: Patroni names one standby in
	// synchronous_standby_names, and with synchronous_commit=on a COMMIT is
	// acknowledged only once that standby has flushed it; Patroni promotes only
	// that standby. False leaves replication asynchronous: Patroni promotes the
	// standby that received most, which may lack the last acknowledged commits.
	Sync bool
}

// Patroni timings of the clusters StartPatroni starts (Patroni's bootstrap.dcs
// settings; its defaults are 30, 10 and 10). The leader key expires PatroniTTL
// seconds after the primary's Patroni last renewed it, and a standby takes it
// within a loop more: that is most of the time a failover takes. Patroni
// requires loop_wait + 2*retry_timeout <= ttl.
const (
	PatroniTTL          = 10
	PatroniLoopWait     = 1
	PatroniRetryTimeout = 3
)

// Patroni is a throwaway high-availability cluster: a one-node etcd 3 (Patroni's
// "etcd3" store, the v3 API, which etcd 3.4 serves without --enable-v2) and
// PostgreSQL nodes each run by its own Patroni, all on loopback ports in a
// temporary directory. Tests kill nodes of it; they never touch the shared
// server.
//
// Clients find the primary with a multi-host connection string and
// target_session_attrs=read-write (URL), not through HAProxy: both drivers
// support it (pgx, and lib/pq since v1.11), it needs no process of its own
// that would itself have to be made highly available, and a new connection
// goes straight to the primary, where a proxy polling Patroni's REST API can
// still send one to a demoted primary until its next check. HAProxy remains the
// way for clients whose driver lacks target_session_attrs (README.md).
type Patroni struct {
	dir   string
	nodes []*PatroniNode
	etcd  *exec.Cmd
	done  map[*exec.Cmd]chan struct{}
	uid   int // user the nodes run as, when we are root; -1 otherwise
	gid   int
	sync  bool
	mu    sync.Mutex
	httpc *http.Client
}

// PatroniNode is one PostgreSQL node of a Patroni cluster.
type PatroniNode struct {
	// Name is the node's Patroni member name: node1, node2, ...
	Name string
	// Port is the port its PostgreSQL listens on, on 127.0.0.1.
	Port int
	// APIPort is the port of its Patroni REST API.
	APIPort int

	dir     string
	patroni *exec.Cmd
	killed  atomic.Bool
}

// PatroniMember is a member of the cluster as Patroni's REST API reports it
// (GET /cluster).
type PatroniMember struct {
	Name string `json:"name"`
	// Role is "leader", "sync_standby" or "replica".
	Role string `json:"role"`
	// State is "running", "starting", "stopped", "creating replica", ...
	State    string `json:"state"`
	Port     int    `json:"port"`
	Timeline int    `json:"timeline"`
	// Lag is the bytes of WAL behind the leader; a number, or "unknown".
	Lag any `json:"lag"`
}

// PatroniAvailable reports why StartPatroni cannot start a cluster on this
// machine (patroni, etcd or the PostgreSQL server binaries missing), or nil.
func PatroniAvailable() error {
	for _, name := range []string{"patroni", "etcd"} {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("no %s found (install the Debian packages patroni and etcd-server)", name)
		}
	}
	if _, err := serverBinDir(); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return errors.New("running as root and there is no postgres user to run the nodes as")
		}
	}
	return nil
}

// StartPatroni starts an etcd and a Patroni cluster, waits until it has a
// primary and every standby streams from it (and, with opts.Sync, one of them
// is the synchronous standby), and removes it when the test ends, killing
// every process it started. It skips the test when PatroniAvailable says the
// programs are missing. Starting takes some seconds: an initdb and a
// pg_basebackup per standby.
func StartPatroni(t testing.TB, opts PatroniOptions) *Patroni {
	t.Helper()
	if err := PatroniAvailable(); err != nil {
		t.Skipf("dbtest: cannot start a Patroni cluster: %v", err)
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	p, err := newPatroni(opts)
	if err != nil {
		t.Fatalf("dbtest: patroni: %v", err)
	}
	t.Cleanup(p.remove)
	if err := p.start(); err != nil {
		t.Fatalf("dbtest: start patroni: %v\n%s", err, p.Logs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := p.WaitHealthy(ctx); err != nil {
		t.Fatalf("dbtest: patroni cluster not healthy: %v\n%s", err, p.Logs())
	}
	return p
}

func newPatroni(opts PatroniOptions) (*Patroni, error) {
	dir, err := os.MkdirTemp("", "chatdb-patroni-")
	if err != nil {
		return nil, err
	}
	p := &Patroni{dir: dir, uid: -1, gid: -1, sync: opts.Sync, done: map[*exec.Cmd]chan struct{}{},
		httpc: &http.Client{Timeout: 2 * time.Second}}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root, and Patroni starts it: run
		// Patroni as the postgres system user, as Cluster runs the server.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p.uid, _ = strconv.Atoi(u.Uid)
		p.gid, _ = strconv.Atoi(u.Gid)
	}
	for i := 1; i <= opts.Nodes; i++ {
		n := &PatroniNode{Name: fmt.Sprintf("node%d", i), dir: filepath.Join(dir, fmt.Sprintf("node%d", i))}
		if n.Port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if n.APIPort, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p.nodes = append(p.nodes, n)
	}
	return p, nil
}

// start starts etcd, then every node's Patroni. The first to take the leader
// key in etcd runs initdb; the others clone it with pg_basebackup.
func (p *Patroni) start() error {
	bin, err := serverBinDir()
	if err != nil {
		return err
	}
	clientPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	p.etcd = exec.Command("etcd", "--name", "etcd0", "--data-dir", filepath.Join(p.dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "etcd0="+peer, "--initial-cluster-state", "new",
		"--initial-cluster-token", filepath.Base(p.dir))
	if err := p.spawn(p.etcd, filepath.Join(p.dir, "etcd.log"), false); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if err := p.waitHTTP(client+"/health", 30*time.Second); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}

	for _, n := range p.nodes {
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			return err
		}
		conf, err := json.MarshalIndent(p.nodeConfig(n, bin, clientPort), "", "  ")
		if err != nil {
			return err
		}
		// JSON is YAML: Patroni reads this file as YAML.
		confFile := filepath.Join(n.dir, "patroni.yml")
		if err := os.WriteFile(confFile, conf, 0o600); err != nil {
			return err
		}
		if p.uid >= 0 {
			for _, f := range []string{p.dir, n.dir, confFile} {
				if err := os.Chown(f, p.uid, p.gid); err != nil {
					return err
				}
			}
		}
		n.patroni = exec.Command("patroni", confFile)
		n.patroni.Dir = n.dir
		n.patroni.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + n.dir, "LC_ALL=C.UTF-8", "PYTHONUNBUFFERED=1"}
		if err := p.spawn(n.patroni, filepath.Join(n.dir, "patroni.log"), true); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

// nodeConfig is node n's Patroni configuration. Authentication is trust on
// loopback: a throwaway cluster has no secret to keep.
func (p *Patroni) nodeConfig(n *PatroniNode, bin string, etcdPort int) map[string]any {
	dcsParams := map[string]any{
		"max_connections": 200,
		// Patroni's own defaults of max_wal_senders and wal_keep_size suit
		// three nodes; hot_standby lets the tests read standbys.
		"hot_standby":        "on",
		"wal_log_hints":      "on",
		"synchronous_commit": "on",
	}
	return map[string]any{
		"scope":   "chatdb-" + filepath.Base(p.dir),
		"name":    n.Name,
		"log":     map[string]any{"level": "INFO"},
		"restapi": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", n.APIPort), "connect_address": fmt.Sprintf("127.0.0.1:%d", n.APIPort)},
		"etcd3":   map[string]any{"hosts": fmt.Sprintf("127.0.0.1:%d", etcdPort)},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl":              PatroniTTL,
				"loop_wait":        PatroniLoopWait,
				"retry_timeout":    PatroniRetryTimeout,
				"synchronous_mode": p.sync,
				"postgresql": map[string]any{
					"use_pg_rewind": false,
					"parameters":    dcsParams,
				},
			},
			"initdb": []any{map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C"}, "no-sync"},
		},
		"postgresql": map[string]any{
			"listen":          fmt.Sprintf("127.0.0.1:%d", n.Port),
			"connect_address": fmt.Sprintf("127.0.0.1:%d", n.Port),
			"data_dir":        filepath.Join(n.dir, "data"),
			"bin_dir":         bin,
			"pgpass":          filepath.Join(n.dir, "pgpass"),
			"authentication": map[string]any{
				"superuser":   map[string]any{"username": "postgres"},
				"replication": map[string]any{"username": "postgres"},
				"rewind":      map[string]any{"username": "postgres"},
			},
			"pg_hba": []string{
				"local all all trust",
				"host all all 127.0.0.1/32 trust",
				"host replication all 127.0.0.1/32 trust",
			},
			"parameters": map[string]any{
				"unix_socket_directories": n.dir,
				// A killed node is never restarted, and the others are not
				// crashed: fsync only guards against the machine's crash,
				// which the tests do not cause.
				"fsync":             "off",
				"full_page_writes":  "off",
				"log_min_messages":  "warning",
				"log_line_prefix":   "%m [%p] ",
				"logging_collector": "off",
			},
		},
	}
}

// spawn starts cmd with its output in logFile; asUser runs it as the nodes'
// user. Each process leads a process group of its own, which remove kills.
func (p *Patroni) spawn(cmd *exec.Cmd, logFile string, asUser bool) error {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	attr := &syscall.SysProcAttr{Setpgid: true}
	if asUser && p.uid >= 0 {
		attr.Credential = &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid)}
		if err := os.Chown(logFile, p.uid, p.gid); err != nil {
			return err
		}
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.done[cmd] = done
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		close(done)
	}()
	return nil
}

func (p *Patroni) waitHTTP(url string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		resp, err := p.httpc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// URL returns a libpq key/value connection string that lists every node, with
// target_session_attrs=read-write: a driver tries the nodes in order and keeps
// the first that accepts writes, so a new connection finds the primary after
// a failover by itself. Both drivers read this form; lib/pq does not read a
// postgres:// URL with a port per host.
func (p *Patroni) URL() string {
	hosts := make([]string, len(p.nodes))
	ports := make([]string, len(p.nodes))
	for i, n := range p.nodes {
		hosts[i], ports[i] = "127.0.0.1", strconv.Itoa(n.Port)
	}
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable target_session_attrs=read-write connect_timeout=2",
		strings.Join(hosts, ","), strings.Join(ports, ","))
}

// NodeURL returns the URL of one node's postgres database, whatever its role.
func (p *Patroni) NodeURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.node(name).Port)
}

// Nodes returns the cluster's nodes.
func (p *Patroni) Nodes() []*PatroniNode { return p.nodes }

func (p *Patroni) node(name string) *PatroniNode {
	for _, n := range p.nodes {
		if n.Name == name {
			return n
		}
	}
	panic("dbtest: no Patroni node " + name)
}

// Members returns the members as the REST API of the first live node that
// answers says.
func (p *Patroni) Members(ctx context.Context) ([]PatroniMember, error) {
	var last error = errors.New("no live node")
	for _, n := range p.nodes {
		if n.killed.Load() {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/cluster", n.APIPort), nil)
		if err != nil {
			return nil, err
		}
		resp, err := p.httpc.Do(req)
		if err != nil {
			last = err
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("GET /cluster on %s: %s %v", n.Name, resp.Status, err)
			continue
		}
		var c struct {
			Members []PatroniMember `json:"members"`
		}
		if err := json.Unmarshal(body, &c); err != nil {
			return nil, err
		}
		return c.Members, nil
	}
	return nil, last
}

// Leader returns the name of the member that holds the leader key and runs,
// or "" when none does.
func (p *Patroni) Leader(ctx context.Context) (string, error) {
	ms, err := p.Members(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if m.Role == "leader" && m.State == "running" {
			return m.Name, nil
		}
	}
	return "", nil
}

// WaitHealthy waits until one member leads and runs, every other live member
// runs with no lag, and, with Sync, one of them is the synchronous standby.
func (p *Patroni) WaitHealthy(ctx context.Context) error {
	live := 0
	for _, n := range p.nodes {
		if !n.killed.Load() {
			live++
		}
	}
	var last string
	for {
		ms, err := p.Members(ctx)
		if err == nil {
			leaders, streaming, syncs := 0, 0, 0
			for _, m := range ms {
				switch {
				case m.Role == "leader" && m.State == "running":
					leaders++
				case m.State == "running" || m.State == "streaming":
					if lag, ok := m.Lag.(float64); ok && lag == 0 {
						streaming++
					}
					if m.Role == "sync_standby" {
						syncs++
					}
				}
			}
			if leaders == 1 && streaming == live-1 && (!p.sync || syncs == 1) {
				return nil
			}
			b, _ := json.Marshal(ms)
			last = string(b)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last seen: %s", ctx.Err(), last)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// WaitLeader waits until a member other than old leads and runs, and returns
// its name.
func (p *Patroni) WaitLeader(ctx context.Context, old string) (string, error) {
	for {
		if l, err := p.Leader(ctx); err == nil && l != "" && l != old {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Kill kills node name as a machine's death would, at once and without a
// chance to clean up: SIGKILL to its Patroni (so that it neither restarts
// PostgreSQL nor releases the leader key, which then expires after
// PatroniTTL) and to its postmaster and every backend. The kernel resets the
// node's connections, so clients see them break at once rather than time out.
func (p *Patroni) Kill(name string) error {
	n := p.node(name)
	n.killed.Store(true)
	var errs []error
	if n.patroni != nil && n.patroni.Process != nil {
		if err := syscall.Kill(-n.patroni.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill patroni: %w", err))
		} else if err := waitGroupGone(n.patroni.Process.Pid); err != nil {
			errs = append(errs, err)
		}
	}
	if err := killPostmaster(filepath.Join(n.dir, "data")); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Switchover asks Patroni to hand the primary role from leader to a standby
// (POST /switchover on the leader's REST API), as an operator does for
// maintenance: Patroni stops leader's PostgreSQL (fast: sessions are ended),
// promotes a standby (with Sync, the synchronous one) and starts leader again
// as a standby of it. It returns when Patroni answers, once the new primary
// runs.
func (p *Patroni) Switchover(ctx context.Context, leader string) error {
	body, err := json.Marshal(map[string]string{"leader": leader})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/switchover", p.node(leader).APIPort), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("switchover: %s: %s", resp.Status, answer)
	}
	return nil
}

// killPostmaster sends SIGKILL to the process group of the postmaster that
// dataDir's postmaster.pid names: Patroni starts PostgreSQL in a session of
// its own, whose group holds the postmaster and its backends.
func killPostmaster(dataDir string) error {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(string(line))
	if err != nil || pid <= 1 {
		return fmt.Errorf("postmaster.pid: bad pid %q", line)
	}
	// The file outlives a killed server: make sure the pid is still this
	// data directory's postmaster before killing anything.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(dataDir)) {
		return nil
	}
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		return nil
	}
	if pgid > 1 {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill postgres: %w", err)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill postgres: %w", err)
	}
	return waitGroupGone(pgid)
}

// waitGroupGone waits until no live process (zombies aside) is left in
// process group pgid: kill returns once the signal is sent, and a backend
// that has not died yet could still answer.
func waitGroupGone(pgid int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		live := false
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// pid (comm) state ppid pgrp ...: comm may hold spaces, so
			// read the fields after its closing parenthesis.
			i := bytes.LastIndexByte(stat, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(string(stat[i+1:]))
			if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
				continue
			}
			if g, _ := strconv.Atoi(f[2]); g == pgid {
				live = true
				break
			}
		}
		if !live {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of group %d still alive 10s after SIGKILL", pgid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Logs returns the tail of each node's Patroni and PostgreSQL output and of
// etcd's, for a failure message.
func (p *Patroni) Logs() string {
	var b strings.Builder
	files := []string{filepath.Join(p.dir, "etcd.log")}
	for _, n := range p.nodes {
		files = append(files, filepath.Join(n.dir, "patroni.log"))
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), data)
	}
	return b.String()
}

// remove kills every process of the cluster and removes its directory.
func (p *Patroni) remove() {
	for _, n := range p.nodes {
		p.Kill(n.Name)
	}
	if p.etcd != nil && p.etcd.Process != nil {
		syscall.Kill(-p.etcd.Process.Pid, syscall.SIGKILL)
	}
	p.mu.Lock()
	var waits []chan struct{}
	for _, d := range p.done {
		waits = append(waits, d)
	}
	p.mu.Unlock()
	for _, d := range waits {
		select {
		case <-d:
		case <-time.After(10 * time.Second):
		}
	}
	// A postmaster that a Patroni started just before it was killed writes
	// its pid file late: look once more.
	for _, n := range p.nodes {
		killPostmaster(filepath.Join(n.dir, "data"))
	}
	os.RemoveAll(p.dir)
}
