package database_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// gatherPool registers db's collector on a fresh registry and returns the value
// of each go_sql_* metric, by name.
func gatherPool(t *testing.T, db *database.DB) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(db.Collector()))
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		require.Len(t, f.GetMetric(), 1, f.GetName())
		m := f.GetMetric()[0]
		require.Equal(t, []*dto.LabelPair{{Name: new("db_name"), Value: new(database.MetricsDBName)}}, m.GetLabel(), f.GetName())
		switch {
		case m.GetGauge() != nil:
			got[f.GetName()] = m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			got[f.GetName()] = m.GetCounter().GetValue()
		default:
			t.Fatalf("%s: neither a gauge nor a counter", f.GetName())
		}
	}
	return got
}

func TestCollector(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target, dbtest.WithConfig(func(c *database.Config) {
			c.MaxOpenConns = 7
			c.MaxIdleConns = 2
		}))
		// One connection busy and one idle, so that the gauges differ.
		ctx := t.Context()
		busy, err := db.SQL().Conn(ctx)
		require.NoError(t, err)
		defer busy.Close()
		idle, err := db.SQL().Conn(ctx)
		require.NoError(t, err)
		require.NoError(t, idle.Close())

		got := gatherPool(t, db)
		s := db.Stats()
		require.Equal(t, map[string]float64{
			"go_sql_max_open_connections":        7,
			"go_sql_open_connections":            float64(s.OpenConnections),
			"go_sql_in_use_connections":          float64(s.InUse),
			"go_sql_idle_connections":            float64(s.Idle),
			"go_sql_wait_count_total":            float64(s.WaitCount),
			"go_sql_wait_duration_seconds_total": s.WaitDuration.Seconds(),
			"go_sql_max_idle_closed_total":       float64(s.MaxIdleClosed),
			"go_sql_max_idle_time_closed_total":  float64(s.MaxIdleTimeClosed),
			"go_sql_max_lifetime_closed_total":   float64(s.MaxLifetimeClosed),
		}, got)
		require.Equal(t, 1.0, got["go_sql_in_use_connections"])
		require.Equal(t, 1.0, got["go_sql_idle_connections"])
	})
}

func TestCollectorTwoPools(t *testing.T) {
	t.Parallel()
	a := dbtest.Open(t, dbtest.SQLite)
	b := dbtest.Open(t, dbtest.SQLite)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(a.Collector()))
	require.Error(t, reg.Register(b.Collector()), "the same labels twice conflict")

	// As the doc comment says: a label of its own on each pool.
	reg = prometheus.NewRegistry()
	require.NoError(t, reg.Register(prometheus.WrapCollectorWith(prometheus.Labels{"pool": "a"}, a.Collector())))
	require.NoError(t, reg.Register(prometheus.WrapCollectorWith(prometheus.Labels{"pool": "b"}, b.Collector())))
	families, err := reg.Gather()
	require.NoError(t, err)
	require.NotEmpty(t, families)
	for _, f := range families {
		require.Len(t, f.GetMetric(), 2, f.GetName())
	}
}

func TestServerVersion(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		v, err := db.ServerVersion(t.Context())
		require.NoError(t, err)
		if target.Postgres() {
			require.Regexp(t, `^PostgreSQL \d+(\.\d+)?$`, v)
		} else {
			require.Regexp(t, `^SQLite 3\.\d+\.\d+$`, v)
		}
	})
}

func TestSQLitePath(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"":                   database.DefaultSQLitePath,
		"chat.db":            "chat.db",
		"sqlite:///tmp/a.db": "/tmp/a.db",
		"file:b.db":          "b.db",
		":memory:":           ":memory:",
	} {
		got, ok := database.SQLitePath(url)
		require.True(t, ok, url)
		require.Equal(t, want, got, url)
	}
	for _, url := range []string{"postgres://u:secret@h/db", "mysql://x", "a.db?x=1"} {
		_, ok := database.SQLitePath(url)
		require.False(t, ok, url)
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	c := database.Config{MaxOpenConns: 5}.WithDefaults()
	require.Equal(t, 5, c.MaxOpenConns)
	require.Equal(t, database.DefaultMaxIdleConns, c.MaxIdleConns)
	require.Equal(t, database.DefaultConnMaxLifetime, c.ConnMaxLifetime)
	require.Equal(t, database.DefaultCloseTimeout, c.CloseTimeout)
	require.Equal(t, database.DriverPgx, c.Driver)
}
