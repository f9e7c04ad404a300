package dbtest

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// RestartAsStandby stops the cluster (fast) and starts it again in recovery,
// as a hot standby with no primary to follow (standby.signal and no
// primary_conninfo): what a failover manager does to a primary it demotes. The
// data stays; the server takes connections and reads, and refuses every write
// as a standby does. It stays a standby until the test ends.
func (c *Cluster) RestartAsStandby() error {
	if err := c.Stop("fast"); err != nil {
		return err
	}
	signal := filepath.Join(c.dir, "data", "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return err
	}
	if c.runAs != "" {
		u, err := user.Lookup(c.runAs)
		if err != nil {
			return err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(signal, uid, gid); err != nil {
			return err
		}
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start as standby: %w", err)
	}
	return nil
}
