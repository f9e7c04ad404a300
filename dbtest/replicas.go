package dbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chatdb/chatdb/database"
)

// Replicas is a throwaway primary with streaming standbys: each standby is a
// pg_basebackup -R of the primary, streaming from it over loopback, with hot
// standby on. The primary's postgres database is migrated, and the standbys
// have replayed the migrations when StartReplicas returns.
type Replicas struct {
	Primary  *Cluster
	Standbys []*Cluster
}

// StartReplicas starts a throwaway primary and n standbys of it, all stopped
// and removed when the test ends. It skips the test (fails it, with
// CHATDB_TEST_REQUIRE_POSTGRES=1) when the PostgreSQL server binaries are not
// installed.
//
// Cost: an initdb, and per standby a base backup of the fresh cluster (about
// 40 MB) and a server start: a few seconds in all.
func StartReplicas(t testing.TB, n int) *Replicas {
	t.Helper()
	primary := StartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A standby stopped for a while must find the WAL it missed still there.
	if err := primary.Exec(ctx, "ALTER SYSTEM SET wal_keep_size = '256MB'", "SELECT pg_reload_conf()"); err != nil {
		t.Fatalf("dbtest: configure primary: %v", err)
	}
	db, err := database.Open(ctx, database.Config{URL: primary.URL()})
	if err != nil {
		t.Fatalf("dbtest: open primary: %v", err)
	}
	err = database.Migrate(ctx, db)
	db.Close()
	if err != nil {
		t.Fatalf("dbtest: migrate primary: %v", err)
	}
	r := &Replicas{Primary: primary}
	for range n {
		s, err := newStandby(primary)
		if err != nil {
			t.Fatalf("dbtest: standby: %v", err)
		}
		t.Cleanup(s.remove)
		if err := s.Start(); err != nil {
			t.Fatalf("dbtest: start standby: %v\n%s", err, s.log())
		}
		r.Standbys = append(r.Standbys, s)
	}
	if err := r.WaitReplayed(ctx); err != nil {
		t.Fatalf("dbtest: standbys: %v", err)
	}
	return r
}

// URLs returns the standbys' URLs, for database.Config.ReplicaURLs.
func (r *Replicas) URLs() []string {
	out := make([]string, len(r.Standbys))
	for i, s := range r.Standbys {
		out[i] = s.URL()
	}
	return out
}

// Config returns a database.Config for target's driver with the primary as
// URL and the standbys as ReplicaURLs.
func (r *Replicas) Config(target Target) database.Config {
	return database.Config{URL: r.Primary.URL(), Driver: target.Driver(), ReplicaURLs: r.URLs()}
}

// WaitReplayed waits until every running standby has replayed the primary's
// WAL up to its position now, or ctx ends.
func (r *Replicas) WaitReplayed(ctx context.Context) error {
	var lsn string
	if err := r.Primary.query(ctx, "SELECT pg_current_wal_lsn()::text", &lsn); err != nil {
		return fmt.Errorf("primary position: %w", err)
	}
	for i, s := range r.Standbys {
		if !s.isRunning() {
			continue
		}
		for {
			var done bool
			err := s.query(ctx, "SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn", &done)
			if err == nil && done {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("standby %d has not replayed %s: %v (last error %v)\n%s", i, lsn, ctx.Err(), err, s.log())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// PauseReplay pauses the standby's replay (pg_wal_replay_pause) and waits
// until it has paused; it keeps receiving WAL.
func (c *Cluster) PauseReplay(ctx context.Context) error {
	if err := c.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		return err
	}
	for {
		var state string
		if err := c.query(ctx, "SELECT pg_get_wal_replay_pause_state()", &state); err != nil {
			return err
		}
		if state == "paused" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ResumeReplay resumes a standby's paused replay (pg_wal_replay_resume).
func (c *Cluster) ResumeReplay(ctx context.Context) error {
	return c.Exec(ctx, "SELECT pg_wal_replay_resume()")
}

// Promote promotes a standby to a primary of its own (pg_promote) and waits
// until it accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	var ok bool
	if err := c.query(ctx, "SELECT pg_promote(true, 60)", &ok); err != nil {
		return err
	}
	if !ok {
		return errors.New("pg_promote did not finish within 60s")
	}
	return nil
}

// Exec runs statements on the cluster's postgres database, on a connection
// of its own.
func (c *Cluster) Exec(ctx context.Context, stmts ...string) error {
	db, err := database.Open(ctx, database.Config{URL: c.URL(), MaxOpenConns: 1, OpenRetryWindow: -1})
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.SQL().ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%.40s: %w", s, err)
		}
	}
	return nil
}

// query runs a one-row query on the cluster's postgres database.
func (c *Cluster) query(ctx context.Context, q string, dest ...any) error {
	db, err := database.Open(ctx, database.Config{URL: c.URL(), MaxOpenConns: 1, OpenRetryWindow: -1})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.SQL().QueryRowContext(ctx, q).Scan(dest...)
}

func (c *Cluster) isRunning() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// newStandby makes a standby of primary: a base backup with -R (standby.signal
// and primary_conninfo), WAL streamed during the backup, not yet started.
func newStandby(primary *Cluster) (*Cluster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chatdb-standby-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, port: port, bin: primary.bin, runAs: primary.runAs, logFile: filepath.Join(dir, "server.log")}
	if c.runAs != "" {
		u, err := user.Lookup(c.runAs)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	out, err := c.command(filepath.Join(c.bin, "pg_basebackup"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-D", filepath.Join(dir, "data"), "-R", "-X", "stream", "-c", "fast", "--no-sync").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_basebackup: %v: %s", err, out)
	}
	return c, nil
}
