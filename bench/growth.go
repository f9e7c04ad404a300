package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// The growth benchmarks measure one operation of chatdb's store over the size
// that could make it grow (members of a chat, unread messages, chats of a
// user), on each growth backend. Their data is built once per backend by
// LoadGrowth.
var (
	// MemberGrowth are the sizes of the chats BenchmarkAppendByMembers appends
	// to: members, the appender included.
	MemberGrowth = []GrowthStep{{"2", 2}, {"100", 100}, {"1k", 1_000}, {"10k", 10_000}, {"100k", 100_000}}
	// BacklogGrowth are the unread messages in each chat of the inbox page
	// BenchmarkInboxByBacklog reads.
	BacklogGrowth = []GrowthStep{{"0", 0}, {"1k", 1_000}, {"100k", 100_000}}
	// ChatsGrowth are the chats of the users whose inbox BenchmarkInboxByChats
	// reads.
	ChatsGrowth = []GrowthStep{{"10", 10}, {"1k", 1_000}, {"10k", 10_000}}
)

// GrowthBackends are the backends the growth benchmarks run on: chatdb's store
// on PostgreSQL through pgx (its default driver), and on the embedded SQLite.
var GrowthBackends = []string{"chatdb", "chatdb-sqlite"}

// The shapes of the growth benchmarks that are not a list of sizes.
const (
	// BacklogChats is the number of chats of each BenchmarkInboxByBacklog
	// user: one inbox page.
	BacklogChats = InboxLimit
	// ReadGroup is the MemberGrowth step whose chat BenchmarkMarkReadUnderAppends
	// marks read in and appends to.
	ReadGroup = "10k"
	// Readers is the number of its members that mark read, in turn.
	Readers = 100
	// Appenders is the number of goroutines that append to it meanwhile, each
	// as a member of its own.
	Appenders = 16
)

// growthVersion changes whenever LoadGrowth builds different data, so that a
// kept database of an older build is not reused.
const growthVersion = 1

// Growth is the data of the growth benchmarks on one backend, and the store
// over it.
type Growth struct {
	// Backend is "chatdb" or "chatdb-sqlite".
	Backend string
	// URL is the database's (a PostgreSQL URL, or sqlite:// and a path).
	URL   string
	DB    *database.DB
	Store *store.Store
	// Loaded is how long building took; zero when a kept database was reused.
	Loaded time.Duration

	GrowthIDs
}

// GrowthIDs are the rows the growth benchmarks act on. They are stored with
// the data (chatdb makes its chats' IDs), so that a kept database is reused.
type GrowthIDs struct {
	// Users are the members of the groups: the chat of MemberGrowth step n
	// has Users[:n], Users[0] its owner, who appends. Made from the seed, not
	// stored.
	Users []uuid.UUID `json:"-"`
	// Creator makes the groups of BenchmarkCreateGroup, of Users[:MaxMembersPerCall].
	Creator uuid.UUID
	// MemberChats are the chats of MemberGrowth, by step name.
	MemberChats map[string]uuid.UUID
	// BacklogUsers are the users of BacklogGrowth and ChatsUsers those of
	// ChatsGrowth, by step name.
	BacklogUsers map[string]uuid.UUID
	ChatsUsers   map[string]uuid.UUID
}

// growthUsers returns the users of the growth data: the group members, then
// the creator, the backlog users and the chats users.
func growthUsers() []uuid.UUID {
	g := newGen(400)
	out := make([]uuid.UUID, store.MaxMembersPerCall+1+len(BacklogGrowth)+len(ChatsGrowth))
	for i := range out {
		out[i] = g.id(base.Add(-24 * time.Hour))
	}
	return out
}

// LoadGrowth opens the growth data of backend, building it when reuse is false
// or no complete build of this version is there: for "chatdb" a database
// called name on the PostgreSQL server serverURL names (dropped and created
// anew), for "chatdb-sqlite" the file growth.db in the directory name under
// the system's temporary directory. The database is migrated with
// database.Migrate; users and the small chats of ChatsGrowth go in by
// CopyFrom, groups by store.CreateGroupChat and backlogs by
// store.ImportMessages. Close the Growth when done; DropGrowth removes it.
func LoadGrowth(ctx context.Context, backend, serverURL, name string, reuse bool) (*Growth, error) {
	start := time.Now()
	url, err := growthURL(backend, serverURL, name)
	if err != nil {
		return nil, err
	}
	g := &Growth{Backend: backend, URL: url}
	g.Users = growthUsers()
	fingerprint := fmt.Sprintf("growth v%d seed=%d", growthVersion, seed)
	if reuse {
		if ok, err := g.open(ctx, fingerprint); err == nil && ok {
			return g, nil
		}
		g.Close()
	}
	if err := DropGrowth(ctx, backend, serverURL, name); err != nil {
		return nil, err
	}
	if backend == "chatdb" {
		if err := recreate(ctx, serverURL, name); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(filepath.Dir(strings.TrimPrefix(url, "sqlite://")), 0o755); err != nil {
		return nil, err
	}
	if err := migrate(ctx, url); err != nil {
		return nil, err
	}
	if _, err := g.open(ctx, ""); err != nil {
		return nil, err
	}
	if err := g.build(ctx, fingerprint, start); err != nil {
		g.Close()
		return nil, fmt.Errorf("bench: %s: build growth data: %w", backend, err)
	}
	g.Loaded = time.Since(start)
	return g, nil
}

// DropGrowth removes backend's growth data, if there is any.
func DropGrowth(ctx context.Context, backend, serverURL, name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return fmt.Errorf("bench: growth data name %q", name)
	}
	if backend == "chatdb" {
		return (&Dataset{Name: name}).Drop(ctx, serverURL)
	}
	return os.RemoveAll(filepath.Join(os.TempDir(), name))
}

func growthURL(backend, serverURL, name string) (string, error) {
	switch backend {
	case "chatdb":
		return databaseURL(serverURL, name)
	case "chatdb-sqlite":
		return "sqlite://" + filepath.Join(os.TempDir(), name, "growth.db"), nil
	}
	return "", fmt.Errorf("bench: unknown growth backend %q", backend)
}

// open opens g's database and store. With a fingerprint, it reports whether
// the database holds a complete build of it, and reads its IDs.
func (g *Growth) open(ctx context.Context, fingerprint string) (bool, error) {
	db, err := database.Open(ctx, database.Config{URL: g.URL, MaxOpenConns: MaxOpen, MaxIdleConns: MaxIdle})
	if err != nil {
		return false, err
	}
	g.DB, g.Store = db, store.New(db)
	if fingerprint == "" {
		return false, nil
	}
	var got, ids string
	err = db.SQL().QueryRowContext(ctx, `SELECT f.value, i.value FROM bench_meta f, bench_meta i
WHERE f.key = 'fingerprint' AND i.key = 'ids'`).Scan(&got, &ids)
	if err != nil || got != fingerprint {
		return false, err
	}
	return true, json.Unmarshal([]byte(ids), &g.GrowthIDs)
}

// Close closes g's database.
func (g *Growth) Close() {
	if g.DB != nil {
		g.DB.Close()
		g.DB, g.Store = nil, nil
	}
}

// build writes the growth data into g's empty database, reporting the time of
// each part, and of everything since start, on standard error.
func (g *Growth) build(ctx context.Context, fingerprint string, start time.Time) error {
	n := store.MaxMembersPerCall
	g.Creator = g.Users[n]
	g.MemberChats, g.BacklogUsers, g.ChatsUsers = map[string]uuid.UUID{}, map[string]uuid.UUID{}, map[string]uuid.UUID{}
	for i, st := range BacklogGrowth {
		g.BacklogUsers[st.Name] = g.Users[n+1+i]
	}
	for i, st := range ChatsGrowth {
		g.ChatsUsers[st.Name] = g.Users[n+1+len(BacklogGrowth)+i]
	}
	parts := []struct {
		what string
		do   func(context.Context) error
	}{
		{"users", g.users},
		{"groups", g.groups},
		{"backlogs", g.backlogs},
		{"small chats", g.smallChats},
		{"statistics", g.analyze},
	}
	var took []string
	for _, p := range parts {
		t := time.Now()
		if err := p.do(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.what, err)
		}
		took = append(took, fmt.Sprintf("%s %v", p.what, time.Since(t).Round(100*time.Millisecond)))
	}
	fmt.Fprintf(os.Stderr, "bench: growth data %s: built in %v (%s)\n", g.Backend, time.Since(start).Round(time.Second), strings.Join(took, ", "))
	ids, err := json.Marshal(g.GrowthIDs)
	if err != nil {
		return err
	}
	return g.DB.WithConnTx(ctx, func(ctx context.Context, conn *sql.Conn, _ *ent.Client) error {
		if _, err := conn.ExecContext(ctx, `CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL)`); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, `INSERT INTO bench_meta (key, value) VALUES ('fingerprint', $1), ('ids', $2)`, fingerprint, string(ids))
		return err
	})
}

// copyRows writes rows into table by database.CopyFrom, in one transaction.
func (g *Growth) copyRows(ctx context.Context, table string, cols []string, rows [][]any) error {
	return g.DB.WithConnTx(ctx, func(ctx context.Context, conn *sql.Conn, _ *ent.Client) error {
		_, err := g.DB.CopyFrom(ctx, conn, table, cols, rows)
		return err
	})
}

// users writes every user, as a platform's sign-ups would have: chatdb has no
// bulk path for them.
func (g *Growth) users(ctx context.Context) error {
	created := base.Add(-24 * time.Hour)
	rows := make([][]any, len(g.Users))
	for i, id := range g.Users {
		rows[i] = []any{id, created, created, fmt.Sprintf("grow%06d@bench.example", i), fmt.Sprintf("Member %d", i), "active"}
	}
	return g.copyRows(ctx, "users", userCols, rows)
}

// groups makes the chats of MemberGrowth by CreateGroupChat, as their owner.
func (g *Growth) groups(ctx context.Context) error {
	as := viewer.NewContext(ctx, g.Users[0])
	for _, st := range MemberGrowth {
		c, err := g.Store.CreateGroupChat(as, "Members "+st.Name, g.Users[1:st.N])
		if err != nil {
			return err
		}
		g.MemberChats[st.Name] = c.ID
	}
	return nil
}

// backlogs gives each BacklogGrowth user BacklogChats chats of two, made by
// CreateGroupChat, with a backlog imported by ImportMessages as the system:
// that many messages from the other member, whose read position moves and the
// user's does not. The chats of the empty backlog get one message from the
// user, so that they have a last message too, read.
func (g *Growth) backlogs(ctx context.Context) error {
	for _, st := range BacklogGrowth {
		user := g.BacklogUsers[st.Name]
		for k := range BacklogChats {
			partner := g.Users[1+k]
			c, err := g.Store.CreateGroupChat(viewer.NewContext(ctx, user), fmt.Sprintf("Backlog %s %d", st.Name, k), []uuid.UUID{partner})
			if err != nil {
				return err
			}
			sender, n := partner, st.N
			if n == 0 {
				sender, n = user, 1
			}
			msgs := make([]store.NewMessage, n)
			for i := range msgs {
				msgs[i] = store.NewMessage{SenderID: sender, Content: Texts[i%len(Texts)]}
			}
			if _, err := g.Store.ImportMessages(viewer.SystemContext(ctx), c.ID, msgs); err != nil {
				return err
			}
		}
	}
	return nil
}

// smallChats gives each ChatsGrowth user that many chats of two by CopyFrom,
// as a store would have left them (CreateGroupChat and one append each would
// take minutes): one message from the other member, a second apart from
// chat to chat, read by the user in every other chat.
func (g *Growth) smallChats(ctx context.Context) error {
	created := base
	var chats, mbs, msgs [][]any
	k := 0
	for _, st := range ChatsGrowth {
		user := g.ChatsUsers[st.Name]
		for range st.N {
			partner := g.Users[1+k%(len(g.Users)-100)]
			chatID, msgID := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
			at := created.Add(time.Duration(k+1) * time.Second)
			chats = append(chats, []any{chatID, created, at, "group", fmt.Sprintf("Small %d", k), at, int64(1), false, user})
			var readSeq int64
			var readID any
			if k%2 == 0 {
				readSeq, readID = 1, msgID
			}
			mbs = append(mbs,
				[]any{uuid.Must(uuid.NewV7()), "owner", created, readSeq, readID, false, at, false, user, chatID},
				[]any{uuid.Must(uuid.NewV7()), "member", created, int64(1), msgID, false, at, false, partner, chatID})
			msgs = append(msgs, []any{msgID, chatID, int64(1), partner, "user", Texts[k%len(Texts)], nil, at})
			k++
		}
	}
	if err := g.copyRows(ctx, "chats", chatCols, chats); err != nil {
		return err
	}
	if err := g.copyRows(ctx, "memberships", membershipCols, mbs); err != nil {
		return err
	}
	return g.copyRows(ctx, "messages", importColumns, msgs)
}

// DeleteChat deletes chat id and, by the foreign keys' cascade, its
// memberships and messages; on PostgreSQL it then vacuums memberships, so that
// the next group written does not pay for the dead rows.
func (g *Growth) DeleteChat(ctx context.Context, id uuid.UUID) error {
	if _, err := g.DB.SQL().ExecContext(ctx, `DELETE FROM chats WHERE id = $1`, id); err != nil {
		return err
	}
	if g.DB.Dialect() != database.Postgres {
		return nil
	}
	_, err := g.DB.SQL().ExecContext(ctx, `VACUUM memberships`)
	return err
}

// analyze gives the planner fresh statistics, as a database that grew this
// way over time would have.
func (g *Growth) analyze(ctx context.Context) error {
	q := "ANALYZE"
	if g.DB.Dialect() == database.Postgres {
		q = "VACUUM (ANALYZE)"
	}
	_, err := g.DB.SQL().ExecContext(ctx, q)
	return err
}

// Texts are the contents of the messages the benchmarks append and the growth
// data holds, cycled through.
var Texts = []string{
	"hello, how is the migration going?",
	"Fine: the index is built, the backfill runs in batches of ten thousand rows.",
	"ok",
	"Can you send me the link to the dashboard once the numbers are in? I want to compare with last week.",
}
