package cli

import (
	"fmt"

	"github.com/chatdb/chatdb/database"
)

// replicaChecks prints a line per read replica (CHATDB_REPLICA_URLS), as the
// first check after Open found it: OK when it serves reads, FAIL when reads
// skip it (down, lagging past CHATDB_MAX_REPLICA_LAG, or promoted). Nothing
// without replicas.
func replicaChecks(r *report, db *database.DB) {
	for _, st := range db.Replicas() {
		head := fmt.Sprintf("%s %s: %s", st.Name, st.URL, st.State)
		switch st.State {
		case database.ReplicaHealthy:
			r.pass("replica", "%s, %s", head, replicaLag(st))
		case database.ReplicaLagging:
			r.fail("replica", head+", "+replicaLag(st),
				"reads skip it until it is within CHATDB_MAX_REPLICA_LAG; check its replay (paused?), its disk and its link to the primary")
		case database.ReplicaForeign:
			r.fail("replica", head+": a standby of another cluster (its system identifier is not the primary's)",
				"fix CHATDB_REPLICA_URLS: it names a standby of another primary")
		case database.ReplicaPromoted:
			r.fail("replica", head+": not in recovery, so not a copy of this primary",
				"remove it from CHATDB_REPLICA_URLS, or rebuild it as a standby of the primary")
		default:
			r.fail("replica", fmt.Sprintf("%s: %v", head, st.Err),
				"reads skip it and go to the primary or the other replicas; start it, or remove it from CHATDB_REPLICA_URLS")
		}
	}
}

// replicaLag says a replica's lag and replay position.
func replicaLag(st database.ReplicaStatus) string {
	lag := "lag unknown"
	if st.Lag >= 0 {
		lag = fmt.Sprintf("lag %s (%d bytes)", roundDuration(st.Lag), st.LagBytes)
	}
	if st.ReplayLSN != "" {
		lag += ", replay at " + st.ReplayLSN
	}
	if st.ReplayPaused {
		lag += ", replay paused"
	}
	return lag
}
