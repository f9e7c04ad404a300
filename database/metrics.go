package database

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// MetricsDBName is the value of the db_name label on the pool metrics that
// Collector exports.
const MetricsDBName = "chatdb"

// Collector returns a Prometheus collector of the pool's statistics, the
// go_sql_* metrics of client_golang's DBStats collector labelled
// db_name="chatdb": open, in-use and idle connections, the configured maximum,
// and counters of waits and of connections closed by the idle and lifetime
// limits. Register it once on the application's registry:
//
//	prometheus.MustRegister(db.Collector())
//
// Collecting costs one call to (*sql.DB).Stats, a mutex and no query. An
// application with several pools wraps each one's collector with a label that
// tells them apart (the registry refuses two with the same labels, and a metric
// whose label names differ between collectors):
//
//	reg.MustRegister(
//		prometheus.WrapCollectorWith(prometheus.Labels{"pool": "primary"}, primary.Collector()),
//		prometheus.WrapCollectorWith(prometheus.Labels{"pool": "replica"}, replica.Collector()),
//	)
//
// With Config.ReplicaURLs it also collects each replica's pool, as go_sql_*
// with db_name="chatdb_replica1" and so on, and the replicas' routing and
// health (see replicaCollector).
func (db *DB) Collector() prometheus.Collector {
	c := collectors.NewDBStatsCollector(db.sql, MetricsDBName)
	if db.replicas == nil {
		return c
	}
	return db.replicas.collector(c)
}
