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
	"github.com/chatdb/chatdb/store"
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
	// Growth adds the chats of BenchmarkHistoryGrowth: chats of 10k, 100k and
	// 1M messages.
	Growth bool
}

// DefaultSize is the data set of the benchmarks.
var DefaultSize = Size{Users: 10_000, BigChat: 200_000, InboxChats: 50, InboxMessages: 100, MixedChats: 16}

// TestSize is a smaller data set of the same shape, for tests.
var TestSize = Size{Users: 1_000, BigChat: 5_000, InboxChats: 50, InboxMessages: 100, MixedChats: 16}

// HistoryGrowth are the sizes of the history-depth growth data: messages in a
// chat.
var HistoryGrowth = []GrowthStep{{"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}}

// GrowthStep is one size of the cost-growth data.
type GrowthStep struct {
	Name string
	N    int
}

// dataVersion changes whenever generation changes, so that a kept database of an
// older generation is not reused.
const dataVersion = 3

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
	// BigChat is the chat of Size.BigChat messages; BigChatMessages are those
	// messages in history order, oldest first (seq 1 first).
	BigChat         uuid.UUID
	BigChatMessages []Position
	// Cursors are the positions HistoryPage pages back from.
	Cursors []Cursor
	// InboxUser is the user with Size.InboxChats chats.
	InboxUser uuid.UUID
	// Reader is a member of BigChat whose read position MarkRead moves.
	Reader uuid.UUID
	// Sender sends the appended messages; AppendChat and MixedChats receive
	// them. Each of those chats has the Sender and one other member, so that
	// an append writes the other's inbox time (the fan-out).
	Sender     uuid.UUID
	AppendChat uuid.UUID
	MixedChats []uuid.UUID

	// GrowthChats are the chats of HistoryGrowth, by step name, each with the
	// cursor in its middle.
	GrowthChats   map[string]uuid.UUID
	GrowthCursors map[string]Cursor

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

// Position is a generated message: its ID, its seq in its chat and its
// creation time.
type Position struct {
	ID        uuid.UUID
	Seq       int64
	CreatedAt time.Time
}

// positions returns n message positions from start, one a second, where every
// tenth message shares its second with the one before, in history order: by
// creation time, then ID (the order chatdb's migration gave seqs in), with
// seqs 1 to n.
func (g *gen) positions(start time.Time, n int) []Position {
	out := make([]Position, n)
	sec := 0
	for i := range out {
		if i%10 != 9 {
			sec++
		}
		t := start.Add(time.Duration(sec) * time.Second)
		out[i] = Position{CreatedAt: t, ID: g.id(t)}
	}
	slices.SortFunc(out, func(a, b Position) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	for i := range out {
		out[i].Seq = int64(i) + 1
	}
	return out
}

// message returns the i-th message of a chat at position p: three in four from
// one of senders, the fourth an assistant reply with metadata and no sender.
func (g *gen) message(chatID uuid.UUID, p Position, i int, senders []uuid.UUID) Message {
	m := Message{ID: p.ID, ChatID: chatID, Seq: p.Seq, CreatedAt: p.CreatedAt, Content: g.content()}
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

// ImportMessages returns n messages for chatID, in time order, as Import
// receives them: three in four from sender, the others assistant replies.
// They start 90 days after the data set's history, so that a chat whose last
// message is no later than that takes them after its history. Their Seq is
// left zero: an import gives seqs.
func ImportMessages(chatID, sender uuid.UUID, n int) []Message {
	g := newGen(99)
	ps := g.positions(importStart, n)
	out := make([]Message, n)
	for i, p := range ps {
		out[i] = g.message(chatID, p, i, []uuid.UUID{sender})
		out[i].Seq = 0
	}
	return out
}

// importStart is the time of the first message ImportMessages makes.
var importStart = base.Add(90 * 24 * time.Hour)

// bigChatMembers are the members of the big chat: its owner, the reader, and
// eight senders.
func (ds *Dataset) bigChatMembers() []uuid.UUID {
	return append([]uuid.UUID{ds.Users[0], ds.Users[1]}, ds.Users[20:28]...)
}

// growthPositions returns the message positions of the i-th HistoryGrowth chat,
// from a stream of its own so that generate can find its middle without loading.
func growthPositions(i, n int) []Position {
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
		ds.Cursors = append(ds.Cursors, Cursor{ChatID: ds.BigChat, Seq: ds.BigChatMessages[at].Seq})
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
		for _, st := range HistoryGrowth {
			id := g.id(base)
			ds.GrowthChats[st.Name] = id
			// The positions are seqs 1 to N: the middle is seq N/2+1.
			ds.GrowthCursors[st.Name] = Cursor{ChatID: id, Seq: int64(st.N/2) + 1}
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
	chatCols       = []string{"id", "created_at", "updated_at", "kind", "title", "last_message_at", "last_seq", "large", "created_by"}
	membershipCols = []string{"id", "role", "joined_at", "read_seq", "last_read_message_id", "muted",
		"chat_last_message_at", "large", "user_id", "chat_id"}
)

// chatRow is a chat as the loader writes it: the time and seq of its last
// message (base and 0 when it has none), and whether it is large.
type chatRow struct {
	id, creator uuid.UUID
	title       string
	last        time.Time
	lastSeq     int64
	large       bool
}

// membershipRow is a membership as the loader writes it; read is the message
// read up to (nil: nothing read).
type membershipRow struct {
	user, chat uuid.UUID
	role       string
	read       *Position
	large      bool
	chatLast   time.Time
}

// chatWith returns a chat ending with message last (nil: none) and the
// memberships of users in it, the first its owner, as chatdb keeps them: the
// chat is large when it has more than store.DefaultFanOutLimit members, and
// so are its memberships; each membership's inbox time is the chat's last
// message's; read gives a user's read position (nil: nothing read).
func chatWith(id, creator uuid.UUID, title string, last *Position, users []uuid.UUID, read func(u uuid.UUID) *Position) (chatRow, []membershipRow) {
	c := chatRow{id: id, creator: creator, title: title, last: base, large: len(users) > store.DefaultFanOutLimit}
	if last != nil {
		c.last, c.lastSeq = last.CreatedAt, last.Seq
	}
	mbs := make([]membershipRow, len(users))
	for i, u := range users {
		mbs[i] = membershipRow{user: u, chat: id, role: "member", large: c.large, chatLast: c.last}
		if i == 0 {
			mbs[i].role = "owner"
		}
		if read != nil {
			mbs[i].read = read(u)
		}
	}
	return c, mbs
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
		return []any{r.id, base, r.last, "group", r.title, r.last, r.lastSeq, r.large, r.creator}, nil
	}))
}

func (l *loader) memberships(rows []membershipRow) {
	g := l.ids
	l.copy("memberships", membershipCols, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := rows[i]
		var readSeq int64
		var readID any
		if r.read != nil {
			readSeq, readID = r.read.Seq, r.read.ID
		}
		return []any{g.id(base), r.role, base, readSeq, readID, false, r.chatLast, r.large, r.user, r.chat}, nil
	}))
}

// messages copies a chat's messages at positions ps, generating rows as COPY
// consumes them.
func (l *loader) messages(g *gen, chatID uuid.UUID, ps []Position, senders []uuid.UUID) {
	i := 0
	l.copy("messages", importColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(ps) {
			return nil, nil
		}
		m := g.message(chatID, ps[i], i, senders)
		i++
		return messageRow(&m), nil
	}))
}

// messageRow returns m as a row of importColumns.
func messageRow(m *Message) []any {
	return []any{m.ID, m.ChatID, m.Seq, m.SenderID, m.Role, m.Content, metadataArg(m.Metadata), m.CreatedAt}
}

// last returns the last of ps, or nil when there is none.
func last(ps []Position) *Position {
	if len(ps) == 0 {
		return nil
	}
	return &ps[len(ps)-1]
}

func (l *loader) bigChat() {
	ds := l.ds
	members := ds.bigChatMembers()
	c, mbs := chatWith(ds.BigChat, ds.Users[0], "Big chat", last(ds.BigChatMessages), members, nil)
	l.chats([]chatRow{c})
	l.memberships(mbs)
	l.messages(newGen(4), ds.BigChat, ds.BigChatMessages, members)
}

// inbox gives InboxUser InboxChats chats with a partner each, and 38 more
// members in every tenth (k mod 10 = 5), which makes it large. Chats end at
// different times, in an order unrelated to their creation; the user has read
// all but (7k mod 40) messages of chat k, and nothing of every tenth chat
// (k mod 10 = 0).
func (l *loader) inbox() {
	ds := l.ds
	n, per := ds.Size.InboxChats, ds.Size.InboxMessages
	l.userChats(newGen(5), ds.InboxUser, n, per, 0, func(k int) int {
		if k%10 == 0 {
			return -1
		}
		return (k * 7) % 40
	}, func(k int) int {
		if k%10 == 5 {
			return store.DefaultFanOutLimit + 8
		}
		return 2
	})
}

// userChats writes n chats of user, each with per messages, members(k)
// members (the user and from ds.partner(offset, k) on), and the user's read
// positions: unread(k) messages of chat k are unread, all of them when it is
// negative. The user and the first partner send the messages.
func (l *loader) userChats(g *gen, user uuid.UUID, n, per, offset int, unread, members func(k int) int) {
	ds := l.ds
	perm := g.r.Perm(n)
	chats := make([]chatRow, n)
	positions := make([][]Position, n)
	var mbs []membershipRow
	for k := range n {
		// Chat k's messages end perm[k] hours after the inbox's start.
		start := base.Add(time.Duration(perm[k])*time.Hour - time.Duration(per)*time.Second)
		ps := g.positions(start, per)
		positions[k] = ps
		users := []uuid.UUID{user}
		for j := range members(k) - 1 {
			users = append(users, ds.partner(offset, k+j))
		}
		var read *Position
		if u := unread(k); u >= 0 && u < per {
			read = &ps[per-1-u]
		}
		var chatMbs []membershipRow
		chats[k], chatMbs = chatWith(g.id(base), user, fmt.Sprintf("Chat %d", k), last(ps), users, func(u uuid.UUID) *Position {
			if u == user {
				return read
			}
			return nil
		})
		mbs = append(mbs, chatMbs...)
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
		return messageRow(&m), nil
	}))
}

// appendChats writes AppendChat and MixedChats: empty, with the Sender as
// owner and one partner each.
func (l *loader) appendChats() {
	ds := l.ds
	ids := append([]uuid.UUID{ds.AppendChat}, ds.MixedChats...)
	var chats []chatRow
	var mbs []membershipRow
	for i, id := range ids {
		c, m := chatWith(id, ds.Sender, fmt.Sprintf("Append %d", i), nil, []uuid.UUID{ds.Sender, ds.partner(7000, i)}, nil)
		chats, mbs = append(chats, c), append(mbs, m...)
	}
	l.chats(chats)
	l.memberships(mbs)
}

func (l *loader) growth() {
	ds := l.ds
	for i, st := range HistoryGrowth {
		id := ds.GrowthChats[st.Name]
		ps := growthPositions(i, st.N)
		c, mbs := chatWith(id, ds.Users[0], "Growth "+st.Name, last(ps), []uuid.UUID{ds.Users[0]}, nil)
		l.chats([]chatRow{c})
		l.memberships(mbs)
		l.messages(newGen(uint64(200+i)), id, ps, ds.bigChatMembers())
	}
}
