package database

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Descriptions of the replica metrics. Each is labelled replica="replica1"
// (ReplicaStatus.Name) but chatdb_reads_total, labelled pool="primary" or
// the replica's name.
var (
	replicaHealthyDesc = prometheus.NewDesc("chatdb_replica_healthy",
		"1 when the replica serves reads: reachable, in recovery, lag within MaxReplicaLag; 0 otherwise.",
		[]string{"replica", "state"}, nil)
	replicaLagDesc = prometheus.NewDesc("chatdb_replica_lag_seconds",
		"Bound on how old the oldest write the replica may be missing is, at its last check; absent when unknown.",
		[]string{"replica"}, nil)
	replicaLagBytesDesc = prometheus.NewDesc("chatdb_replica_lag_bytes",
		"The primary's WAL position minus the replica's replay position, at its last check; absent when unknown.",
		[]string{"replica"}, nil)
	readsDesc = prometheus.NewDesc("chatdb_reads_total",
		"Reads routed by ReadClient, by pool.",
		[]string{"pool"}, nil)
	fallbacksDesc = prometheus.NewDesc("chatdb_replica_fallbacks_total",
		"Reads that failed on the replica (lost connection, recovery conflict) and ran again on the primary.",
		[]string{"replica"}, nil)
)

// replicaCollector collects the primary's pool (primary), each replica's
// pool, and the replicas' health, lag and routing counters: one collector
// per pool, told apart by db_name.
type replicaCollector struct {
	rs    *replicaSet
	pools []prometheus.Collector
}

func (rs *replicaSet) collector(primary prometheus.Collector) prometheus.Collector {
	c := &replicaCollector{rs: rs, pools: []prometheus.Collector{primary}}
	for _, r := range rs.list {
		c.pools = append(c.pools, collectors.NewDBStatsCollector(r.sql, MetricsDBName+"_"+r.name))
	}
	return c
}

func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, p := range c.pools {
		p.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{replicaHealthyDesc, replicaLagDesc, replicaLagBytesDesc, readsDesc, fallbacksDesc} {
		ch <- d
	}
}

// Collect costs a call to (*sql.DB).Stats per pool and atomic loads; no
// query.
func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.pools {
		p.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(readsDesc, prometheus.CounterValue, float64(c.rs.primaryReads.Load()), "primary")
	for _, r := range c.rs.list {
		st := r.status.Load()
		healthy := 0.0
		if st.State == ReplicaHealthy {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(replicaHealthyDesc, prometheus.GaugeValue, healthy, r.name, string(st.State))
		if st.Lag >= 0 {
			ch <- prometheus.MustNewConstMetric(replicaLagDesc, prometheus.GaugeValue, st.Lag.Seconds(), r.name)
		}
		if st.LagBytes >= 0 {
			ch <- prometheus.MustNewConstMetric(replicaLagBytesDesc, prometheus.GaugeValue, float64(st.LagBytes), r.name)
		}
		ch <- prometheus.MustNewConstMetric(readsDesc, prometheus.CounterValue, float64(r.reads.Load()), r.name)
		ch <- prometheus.MustNewConstMetric(fallbacksDesc, prometheus.CounterValue, float64(r.fallbacks.Load()), r.name)
	}
}
