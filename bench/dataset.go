package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/schema/schematype"
)

// DefaultServerURL is the server the data set is created on when
// BENCH_DATABASE_URL is not set: the local PostgreSQL as postgres, without TLS.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Size says how big a data set to load.
type Size struct {
	// Users is the number of users.
	Users int
	// BigChat is the number of messages in the chat HistoryPage and Mixed read.
	BigChat int
	// InboxChats is the number of chats of the user whose inbox Inbox reads, and
	// InboxMessages the number of messages in each.
	InboxChats    int
	InboxMessages int
	// MixedChats is the number of chats Mixed appends to, one per goroutine.
	MixedChats int
	// Growth adds the chats and users of the cost-growth benchmarks: chats of 10k,
	// 100k and 1M messages, users with 10, 100, 1k and 10k chats.
	Growth bool
}

// DefaultSize is the data set of the benchmarks.
var DefaultSize = Size{Users: 10_000, BigChat: 200_000, InboxChats: 50, InboxMessages: 100, MixedChats: 16}

// TestSize is a smaller data set of the same shape, for tests.
var TestSize = Size{Users: 1_000, BigChat: 5_000, InboxChats: 50, InboxMessages: 100, MixedChats: 16}

// HistoryGrowth and InboxGrowth are the sizes of the cost-growth data: messages in
// a chat, chats of a user.
var (
	HistoryGrowth = []GrowthStep{{"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}}
	InboxGrowth   = []GrowthStep{{"10", 10}, {"100", 100}, {"1k", 1_000}, {"10k", 10_000}}
)

// GrowthStep is one size of the cost-growth data.
type GrowthStep struct {
	Name string
	N    int
}

// dataVersion changes whenever generation changes, so that a kept database of an
// older generation is not reused.
const dataVersion = 2

// seed makes the data set the same on every run: same IDs, same texts.
const seed = 20261125

// HistoryCursors is how many different cursors HistoryPage and Mixed cycle
// through, spread over the big chat.
const HistoryCursors = 16

// Dataset is a loaded data set: where it is and the IDs the benchmarks use.
type Dataset struct {
	// URL is the database's URL.
	URL string
	// Name is the database's name.
	Name string
	// Size is what was loaded.
	Size Size
	// Loaded is how long loading took; zero when a kept database was reused.
	Loaded time.Duration

	// Users are all users, in creation order.
	Users []uuid.UUID
	// BigChat is the chat of Size.BigChat messages; BigChatMessages are their
	// positions in history order, oldest first.
	BigChat         uuid.UUID
	BigChatMessages []Cursor
	// Cursors are the positions HistoryPage pages back from.
	Cursors []Cursor
	// InboxUser is the user with Size.InboxChats chats.
	InboxUser uuid.UUID
	// Reader is a member of BigChat whose read position MarkRead moves.
	Reader uuid.UUID
	// Sender sends the appended messages; AppendChat and MixedChats receive them.
	Sender     uuid.UUID
	AppendChat uuid.UUID
	MixedChats []uuid.UUID

	// GrowthChats are the chats of HistoryGrowth, by step name, each with the
	// cursor in its middle; GrowthUsers the users of InboxGrowth.
	GrowthChats   map[string]uuid.UUID
	GrowthCursors map[string]Cursor
	GrowthUsers   map[string]uuid.UUID

	pool *pgxpool.Pool
}

// Load creates database name on the server serverURL names (dropping it first),
// applies chatdb's migrations with database.Migrate, and fills it with COPY. With
// reuse, a database of that name that holds a complete data set of the same size
// and generation is kept as it is. Close the Dataset when done; Drop removes the
// database.
func Load(ctx context.Context, serverURL, name string, size Size, reuse bool) (*Dataset, error) {
	start := time.Now()
	dbURL, err := databaseURL(serverURL, name)
	if err != nil {
		return nil, err
	}
	ds := generate(size)
	ds.URL, ds.Name = dbURL, name
	fingerprint := fmt.Sprintf("v%d seed=%d %+v", dataVersion, seed, size)

	if reuse {
		if ok, err := reusable(ctx, dbURL, fingerprint); err == nil && ok {
			if err := ds.open(ctx); err != nil {
				return nil, err
			}
			// Migrations added since the data set was loaded still apply.
			if err := migrate(ctx, dbURL); err != nil {
				ds.Close()
				return nil, err
			}
			return ds, nil
		}
	}
	if err := recreate(ctx, serverURL, name); err != nil {
		return nil, err
	}
	if err := migrate(ctx, dbURL); err != nil {
		ds.Drop(context.WithoutCancel(ctx), serverURL)
		return nil, err
	}
	if err := ds.open(ctx); err != nil {
		ds.Drop(context.WithoutCancel(ctx), serverURL)
		return nil, err
	}
	if err := ds.fill(ctx, fingerprint); err != nil {
		ds.Drop(context.WithoutCancel(ctx), serverURL)
		return nil, fmt.Errorf("bench: load data set: %w", err)
	}
	ds.Loaded = time.Since(start)
	return ds, nil
}

// Close releases the data set's own connections.
func (ds *Dataset) Close() {
	if ds.pool != nil {
		ds.pool.Close()
		ds.pool = nil
	}
}

// Drop closes the data set and drops its database.
func (ds *Dataset) Drop(ctx context.Context, serverURL string) error {
	ds.Close()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{ds.Name}.Sanitize()+" WITH (FORCE)")
	return err
}

// Pool is a connection pool on the data set for the harness's own statements
// (set-up and clean-up between timed runs).
func (ds *Dataset) Pool() *pgxpool.Pool { return ds.pool }

func (ds *Dataset) open(ctx context.Context) error {
	pool, err := pgxpool.New(ctx, ds.URL)
	if err != nil {
		return err
	}
	ds.pool = pool
	return nil
}

func databaseURL(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", errors.New("bench: malformed server URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func reusable(ctx context.Context, dbURL, fingerprint string) (bool, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var got string
	if err := conn.QueryRow(ctx, "SELECT value FROM bench_meta WHERE key = 'fingerprint'").Scan(&got); err != nil {
		return false, err
	}
	return got == fingerprint, nil
}

func recreate(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("bench: connect to server: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("bench: drop %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("bench: create %s: %w", name, err)
	}
	return nil
}

func migrate(ctx context.Context, dbURL string) error {
	db, err := database.Open(ctx, database.Config{URL: dbURL})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := database.Migrate(ctx, db); err != nil {
		return fmt.Errorf("bench: migrate: %w", err)
	}
	return nil
}

// base is the time the data set's history starts.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// gen makes the data set's values from a fixed seed.
type gen struct {
	r *rand.Rand
}

func newGen(stream uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, stream))} }

// id returns a UUIDv7 whose time is t and whose other bits come from the seed.
func (g *gen) id(t time.Time) uuid.UUID {
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (40 - 8*i))
	}
	lo, hi := g.r.Uint64(), g.r.Uint64()
	for i := 6; i < 16; i++ {
		if i < 11 {
			u[i] = byte(lo >> (8 * (i - 6)))
		} else {
			u[i] = byte(hi >> (8 * (i - 11)))
		}
	}
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u
}

var words = strings.Fields(`the a message chat reply model token context window user assistant
system tool answer question please thanks sure here is how to write code in go with postgres
index query page inbox unread read mark append import history keyset cursor fast slow`)

// content returns a message text of 40 to 240 bytes.
func (g *gen) content() string {
	n := 40 + g.r.IntN(200)
	var b strings.Builder
	b.Grow(n + 16)
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[g.r.IntN(len(words))])
	}
	return b.String()
}

// positions returns n message positions from start, one a second, where every
// tenth message shares its second with the one before (so that ties on
// created_at are broken by id), sorted in history order.
func (g *gen) positions(start time.Time, n int) []Cursor {
	out := make([]Cursor, n)
	sec := 0
	for i := range out {
		if i%10 != 9 {
			sec++
		}
		t := start.Add(time.Duration(sec) * time.Second)
		out[i] = Cursor{CreatedAt: t, ID: g.id(t)}
	}
	slices.SortFunc(out, func(a, b Cursor) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// message returns the i-th message of a chat at position p: three in four from
// one of senders, the fourth an assistant reply with metadata and no sender.
func (g *gen) message(chatID uuid.UUID, p Cursor, i int, senders []uuid.UUID) Message {
	m := Message{ID: p.ID, ChatID: chatID, CreatedAt: p.CreatedAt, Content: g.content()}
	if i%4 == 3 {
		m.Role = "assistant"
		m.Metadata = &schematype.MessageMetadata{Model: "bench-model", PromptTokens: 100 + i%900, CompletionTokens: 20 + i%200}
	} else {
		m.Role = "user"
		s := senders[i%len(senders)]
		m.SenderID = &s
	}
	return m
}

// ImportMessages returns n messages for chatID, as Import receives them.
func ImportMessages(chatID, sender uuid.UUID, n int) []Message {
	g := newGen(99)
	ps := g.positions(base.Add(90*24*time.Hour), n)
	out := make([]Message, n)
	for i, p := range ps {
		out[i] = g.message(chatID, p, i, []uuid.UUID{sender})
	}
	return out
}

// bigChatMembers are the members of the big chat: its owner, the reader, and
// eight senders.
func (ds *Dataset) bigChatMembers() []uuid.UUID {
	return append([]uuid.UUID{ds.Users[0], ds.Users[1]}, ds.Users[20:28]...)
}

// growthPositions returns the message positions of the i-th HistoryGrowth chat,
// from a stream of its own so that generate can find its middle without loading.
func growthPositions(i, n int) []Cursor {
	return newGen(uint64(100+i)).positions(base, n)
}

// partner returns the partner of a user's k-th chat, from Users[100:].
func (ds *Dataset) partner(offset, k int) uuid.UUID {
	return ds.Users[100+(offset+k)%(len(ds.Users)-100)]
}

// generate fills the Dataset's IDs; fill writes the rows they belong to.
func generate(size Size) *Dataset {
	g := newGen(1)
	ds := &Dataset{Size: size}
	ds.Users = make([]uuid.UUID, size.Users)
	for i := range ds.Users {
		ds.Users[i] = g.id(base.Add(-24 * time.Hour))
	}
	ds.BigChat = g.id(base)
	ds.BigChatMessages = newGen(2).positions(base, size.BigChat)
	// Cursors spread over the second half, so every page is full and reads
	// reach into the middle of the index, not only its end.
	for i := range HistoryCursors {
		at := size.BigChat/2 + i*(size.BigChat/2)/HistoryCursors
		ds.Cursors = append(ds.Cursors, ds.BigChatMessages[at])
	}
	// Users 0 to 99 have roles; partners in chats are drawn from the others, so
	// that no role user is in a chat by accident.
	ds.Reader, ds.InboxUser, ds.Sender = ds.Users[1], ds.Users[2], ds.Users[3]
	ds.AppendChat = g.id(base)
	for range size.MixedChats {
		ds.MixedChats = append(ds.MixedChats, g.id(base))
	}
	if size.Growth {
		ds.GrowthChats = map[string]uuid.UUID{}
		ds.GrowthCursors = map[string]Cursor{}
		ds.GrowthUsers = map[string]uuid.UUID{}
		for i, st := range HistoryGrowth {
			ds.GrowthChats[st.Name] = g.id(base)
			ds.GrowthCursors[st.Name] = growthPositions(i, st.N)[st.N/2]
		}
		for i, st := range InboxGrowth {
			ds.GrowthUsers[st.Name] = ds.Users[10+i]
		}
	}
	return ds
}

func (ds *Dataset) fill(ctx context.Context, fingerprint string) error {
	conn, err := ds.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	c := conn.Conn()
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// The rows are consistent by construction; skipping the foreign key triggers
	// makes COPY several times faster. Only a superuser may; others load slower.
	if _, err := tx.Exec(ctx, "SAVEPOINT fk"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT fk"); err != nil {
			return err
		}
	}
	l := &loader{tx: tx, ds: ds, ids: newGen(3)}
	l.users()
	l.bigChat()
	l.inbox()
	l.appendChats()
	if ds.Size.Growth {
		l.growth()
	}
	if l.err != nil {
		return l.err
	}
	// chatdb's memberships keep a copy of their chat's last_message_at for the
	// inbox's order; the store maintains it, the COPY above does not.
	if _, err := tx.Exec(ctx, `UPDATE memberships SET chat_last_message_at = chats.last_message_at
FROM chats WHERE chats.id = memberships.chat_id`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL)`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO bench_meta VALUES ('fingerprint', $1)`, fingerprint); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	// Fresh statistics, and a visibility map so that unread counts are index-only.
	_, err = c.Exec(ctx, "VACUUM (ANALYZE) users, chats, memberships, messages")
	return err
}

// loader writes the rows of a data set in one transaction; the first error stops it.
type loader struct {
	tx  pgx.Tx
	ds  *Dataset
	err error
	// ids makes the IDs of memberships, across calls.
	ids *gen
}

func (l *loader) copy(table string, cols []string, src pgx.CopyFromSource) {
	if l.err != nil {
		return
	}
	_, l.err = l.tx.CopyFrom(context.Background(), pgx.Identifier{table}, cols, src)
	if l.err != nil {
		l.err = fmt.Errorf("copy %s: %w", table, l.err)
	}
}

var (
	userCols       = []string{"id", "created_at", "updated_at", "email", "display_name", "status"}
	credentialCols = []string{"id", "created_at", "updated_at", "user_id", "password_hash"}
	chatCols       = []string{"id", "created_at", "updated_at", "kind", "title", "last_message_at", "created_by"}
	membershipCols = []string{"id", "role", "joined_at", "last_read_at", "last_read_message_id", "muted", "user_id", "chat_id"}
)

type chatRow struct {
	id, creator uuid.UUID
	title       string
	last        time.Time
}

type membershipRow struct {
	user, chat uuid.UUID
	role       string
	read       *Cursor
}

func (l *loader) users() {
	created := base.Add(-24 * time.Hour)
	hash := "$2a$10$" + strings.Repeat("b", 53)
	l.copy("users", userCols, pgx.CopyFromSlice(len(l.ds.Users), func(i int) ([]any, error) {
		return []any{l.ds.Users[i], created, created, fmt.Sprintf("user%05d@bench.example", i),
			fmt.Sprintf("User %d", i), "active"}, nil
	}))
	// Every user signs in with a password: a credential each, keyed by the
	// user's ID as chatdb's migration keys the hashes it moved.
	l.copy("credentials", credentialCols, pgx.CopyFromSlice(len(l.ds.Users), func(i int) ([]any, error) {
		return []any{l.ds.Users[i], created, created, l.ds.Users[i], hash}, nil
	}))
}

func (l *loader) chats(rows []chatRow) {
	l.copy("chats", chatCols, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := rows[i]
		return []any{r.id, base, r.last, "group", r.title, r.last, r.creator}, nil
	}))
}

func (l *loader) memberships(rows []membershipRow) {
	g := l.ids
	l.copy("memberships", membershipCols, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := rows[i]
		var readAt, readID any
		if r.read != nil {
			readAt, readID = r.read.CreatedAt, r.read.ID
		}
		return []any{g.id(base), r.role, base, readAt, readID, false, r.user, r.chat}, nil
	}))
}

// messages copies a chat's messages at positions ps, generating rows as COPY
// consumes them.
func (l *loader) messages(g *gen, chatID uuid.UUID, ps []Cursor, senders []uuid.UUID) {
	i := 0
	l.copy("messages", importColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(ps) {
			return nil, nil
		}
		m := g.message(chatID, ps[i], i, senders)
		i++
		return []any{m.ID, m.ChatID, m.SenderID, m.Role, m.Content, metadataArg(m.Metadata), m.CreatedAt}, nil
	}))
}

func (l *loader) bigChat() {
	ds := l.ds
	ps := ds.BigChatMessages
	last := base
	if len(ps) > 0 {
		last = ps[len(ps)-1].CreatedAt
	}
	l.chats([]chatRow{{id: ds.BigChat, creator: ds.Users[0], title: "Big chat", last: last}})
	members := ds.bigChatMembers()
	var rows []membershipRow
	for i, u := range members {
		role := "member"
		if i == 0 {
			role = "owner"
		}
		rows = append(rows, membershipRow{user: u, chat: ds.BigChat, role: role})
	}
	l.memberships(rows)
	l.messages(newGen(4), ds.BigChat, ps, members)
}

// inbox gives InboxUser InboxChats chats with a partner each. Chats end at
// different times, in an order unrelated to their creation; the user has read
// all but (7k mod 40) messages of chat k, and nothing of every tenth chat.
func (l *loader) inbox() {
	ds := l.ds
	n, per := ds.Size.InboxChats, ds.Size.InboxMessages
	l.userChats(newGen(5), ds.InboxUser, n, per, 0, func(k int) int {
		if k%10 == 0 {
			return -1
		}
		return (k * 7) % 40
	})
}

// userChats writes n chats of user, each with per messages and a partner from
// ds.partner(offset, k), and the user's read positions: unread(k) messages of chat k
// are unread, all of them when it is negative.
func (l *loader) userChats(g *gen, user uuid.UUID, n, per, offset int, unread func(k int) int) {
	ds := l.ds
	perm := g.r.Perm(n)
	chats := make([]chatRow, n)
	positions := make([][]Cursor, n)
	var mbs []membershipRow
	for k := range n {
		// Chat k's messages end perm[k] hours after the inbox's start.
		start := base.Add(time.Duration(perm[k])*time.Hour - time.Duration(per)*time.Second)
		ps := g.positions(start, per)
		positions[k] = ps
		chats[k] = chatRow{id: g.id(base), creator: user, title: fmt.Sprintf("Chat %d", k), last: ps[len(ps)-1].CreatedAt}
		partner := ds.partner(offset, k)
		var read *Cursor
		if u := unread(k); u >= 0 && u < per {
			read = &ps[per-1-u]
		}
		mbs = append(mbs,
			membershipRow{user: user, chat: chats[k].id, role: "owner", read: read},
			membershipRow{user: partner, chat: chats[k].id, role: "member"})
	}
	l.chats(chats)
	l.memberships(mbs)
	// All chats' messages in one COPY.
	k, i := 0, 0
	l.copy("messages", importColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == per {
			k, i = k+1, 0
		}
		if k == n {
			return nil, nil
		}
		partner := ds.partner(offset, k)
		m := g.message(chats[k].id, positions[k][i], i, []uuid.UUID{user, partner})
		i++
		return []any{m.ID, m.ChatID, m.SenderID, m.Role, m.Content, metadataArg(m.Metadata), m.CreatedAt}, nil
	}))
}

func (l *loader) appendChats() {
	ds := l.ds
	ids := append([]uuid.UUID{ds.AppendChat}, ds.MixedChats...)
	var chats []chatRow
	var mbs []membershipRow
	for i, id := range ids {
		chats = append(chats, chatRow{id: id, creator: ds.Sender, title: fmt.Sprintf("Append %d", i), last: base})
		mbs = append(mbs, membershipRow{user: ds.Sender, chat: id, role: "owner"})
	}
	l.chats(chats)
	l.memberships(mbs)
}

func (l *loader) growth() {
	ds := l.ds
	for i, st := range HistoryGrowth {
		id := ds.GrowthChats[st.Name]
		ps := growthPositions(i, st.N)
		l.chats([]chatRow{{id: id, creator: ds.Users[0], title: "Growth " + st.Name, last: ps[len(ps)-1].CreatedAt}})
		l.memberships([]membershipRow{{user: ds.Users[0], chat: id, role: "owner"}})
		l.messages(newGen(uint64(200+i)), id, ps, ds.bigChatMembers())
	}
	for i, st := range InboxGrowth {
		l.userChats(newGen(uint64(300+i)), ds.GrowthUsers[st.Name], st.N, 3, 1000*i, func(k int) int { return k % 3 })
	}
}
