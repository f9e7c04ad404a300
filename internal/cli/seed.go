package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/brianvoe/gofakeit/v7"
	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// seedOptions are the flags of `chatdb seed`.
type seedOptions struct {
	url      string
	users    int
	chats    int
	messages int
	seed     uint64
	batch    int
	workers  int
	progress string
}

func newSeed() *cobra.Command {
	o := seedOptions{}
	c := &cobra.Command{
		Use:   "seed",
		Short: "Fill the database with realistic, reproducible users, chats and messages",
		Long: `Seed applies the migrations, then creates --users users, --chats chats and
--messages messages through the store API: users as the system (sign-up), chats
as the user who creates them, messages by bulk import (store.ImportMessages: COPY
on PostgreSQL, multi-row INSERTs on SQLite) in transactions of --batch messages.

About half the chats are direct chats between two users, a third are group
chats of 2 to 12 members, and one in seven is an assistant chat. Messages
are spread unevenly over the chats, as real traffic is, and over the 30 days
before the run, in order within each chat.

The same --seed gives the same data: names, emails, chat titles and members,
message texts, senders and order (IDs, and times relative to the run, differ).
Emails carry the seed (name.surname.N@sS.example.org), so seeds can be loaded
side by side in one database; loading a seed twice is refused. --seed 0 picks a
random seed and prints it.

Interrupted (Ctrl-C), seed stops at once, keeps what it committed and says how
much that is. Run the same command again and it resumes: it finds the users,
chats and messages already stored (all of them are committed whole, each
chat's messages in order) and adds the rest, so that the database ends as one
uninterrupted run would have left it. A seed loaded with other counts is
refused.

Progress is a bar on a terminal and a line every few seconds otherwise; a
summary with rows per second ends the run.`,
		Example: `  chatdb seed --users 20 --chats 10 --messages 500
  chatdb seed --users 1000 --chats 2000 --messages 1000000 --seed 42 \
      --url 'postgres://postgres@127.0.0.1:5432/chat?sslmode=disable'`,
		Args: exactArgs(0, "no arguments (counts are flags: --users, --chats, --messages)"),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			ctx := c.Context()
			cfg, err := config(ctx, o.url)
			if err != nil {
				return err
			}
			return seed(ctx, c.OutOrStdout(), c.ErrOrStderr(), cfg, o)
		},
	}
	f := c.Flags()
	urlFlag(f, &o.url)
	f.IntVar(&o.users, "users", 100, "users to create")
	f.IntVar(&o.chats, "chats", 50, "chats to create")
	f.IntVar(&o.messages, "messages", 10000, "messages to import, spread over the chats")
	f.Uint64Var(&o.seed, "seed", 1, "random seed; the same seed gives the same data (0: pick one)")
	f.IntVar(&o.batch, "batch", 10000, "messages per import transaction")
	f.IntVar(&o.workers, "workers", 0, "concurrent writers (default: 4 on PostgreSQL, 1 on SQLite)")
	f.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal), bar, lines or none")
	return c
}

func (o *seedOptions) validate() error {
	switch {
	case o.users < 0 || o.chats < 0 || o.messages < 0:
		return errors.New("--users, --chats and --messages must not be negative")
	case o.chats > 0 && o.users == 0:
		return errors.New("--chats needs at least one user (--users)")
	case o.messages > 0 && o.chats == 0:
		return errors.New("--messages needs at least one chat (--chats)")
	case o.batch < 1:
		return errors.New("--batch must be at least 1")
	case o.workers < 0:
		return errors.New("--workers must not be negative")
	}
	switch o.progress {
	case "auto", "bar", "lines", "none":
	default:
		return fmt.Errorf("--progress %q: want auto, bar, lines or none", o.progress)
	}
	return nil
}

// --- the plan: everything the seed decides, made up front from the seed ---

// seedUser is a user to create.
type seedUser struct {
	email, name string
}

// seedChat is a chat to create and fill.
type seedChat struct {
	kind    chat.Kind
	title   string
	creator int   // index into the plan's users
	members []int // other members, indexes into users; the other person for a direct chat
	count   int   // messages to import
}

// seedPlan is what a seed run creates.
type seedPlan struct {
	seed  uint64
	users []seedUser
	chats []seedChat
}

// newSeedPlan makes the plan for seed: users, chats and how many messages each
// chat gets. It depends on nothing but its arguments.
func newSeedPlan(seed uint64, users, chats, messages int) *seedPlan {
	f := gofakeit.NewFaker(rand.NewPCG(seed, 0x5eed), false)
	p := &seedPlan{seed: seed}
	for i := range users {
		first, last := f.FirstName(), f.LastName()
		p.users = append(p.users, seedUser{
			email: fmt.Sprintf("%s.%s.%d@s%d.example.org", emailPart(first), emailPart(last), i+1, seed),
			name:  first + " " + last,
		})
	}
	pairs := map[[2]int]bool{}
	maxPairs := users * (users - 1) / 2
	for range chats {
		creator := f.IntN(users)
		roll := f.IntN(14)
		switch {
		case roll < 7 && len(pairs) < maxPairs:
			// A pair has one direct chat: look for one that has none yet.
			for {
				other := f.IntN(users)
				key := [2]int{min(creator, other), max(creator, other)}
				if other != creator && !pairs[key] {
					pairs[key] = true
					p.chats = append(p.chats, seedChat{kind: chat.KindDirect, creator: creator, members: []int{other}})
					break
				}
				creator = f.IntN(users)
			}
		case roll < 12 || users == 1:
			n := 0 // a single user's groups have nobody else to add
			if users > 1 {
				n = f.IntRange(1, min(11, users-1))
			}
			members := map[int]bool{creator: true}
			var ids []int
			for len(ids) < n {
				m := f.IntN(users)
				if !members[m] {
					members[m] = true
					ids = append(ids, m)
				}
			}
			title := groupTitle(f)
			p.chats = append(p.chats, seedChat{kind: chat.KindGroup, title: title, creator: creator, members: ids})
		default:
			p.chats = append(p.chats, seedChat{kind: chat.KindAssistant, title: "Help with " + strings.ToLower(f.Hobby()), creator: creator})
		}
	}
	// Uneven traffic: weights from a heavy-tailed distribution, then counts by
	// largest remainder so that they add up to exactly messages.
	if len(p.chats) > 0 {
		weights := make([]float64, len(p.chats))
		var sum float64
		for i := range weights {
			weights[i] = 1 / math.Pow(1-f.Float64()*0.999, 1.2) // Pareto-like, bounded
			sum += weights[i]
		}
		type rem struct {
			i int
			r float64
		}
		rems := make([]rem, len(p.chats))
		given := 0
		for i, w := range weights {
			exact := float64(messages) * w / sum
			p.chats[i].count = int(exact)
			given += p.chats[i].count
			rems[i] = rem{i, exact - math.Floor(exact)}
		}
		sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
		for k := 0; given < messages; k++ {
			p.chats[rems[k%len(rems)].i].count++
			given++
		}
	}
	return p
}

// emailPart keeps the letters of a name, lower-cased, for an email address.
func emailPart(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r < unicode.MaxASCII && unicode.IsLetter(r) {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}

func groupTitle(f *gofakeit.Faker) string {
	switch f.IntN(4) {
	case 0:
		return f.Company() + " team"
	case 1:
		return f.Hobby() + " club"
	case 2:
		return f.AppName() + " launch"
	default:
		return capitalise(f.Adjective()) + " " + f.Noun() + " chat"
	}
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// messageCount is the number of messages the plan makes.
func (p *seedPlan) messageCount() int {
	n := 0
	for _, c := range p.chats {
		n += c.count
	}
	return n
}

// messages generates chat i's messages, from the from'th (0-based) on, calling
// emit with each batch of at most size. The texts, senders and roles depend
// only on the plan's seed and i; the times are spread over the 30 days before
// end, in order, so that a run that resumes an earlier one (with an end that
// is not earlier) appends after what that one stored.
func (p *seedPlan) messages(i int, ids []uuid.UUID, end time.Time, size, from int, emit func([]store.NewMessage) error) error {
	c := p.chats[i]
	if c.count <= from {
		return nil
	}
	f := gofakeit.NewFaker(rand.NewPCG(p.seed, uint64(i)+1), false)
	people := append([]int{c.creator}, c.members...)
	const span = int64(seedHistory / time.Microsecond)
	start := end.Add(-seedHistory)
	step := span / int64(c.count)
	var prev int64 = -1
	batch := make([]store.NewMessage, 0, min(size, c.count))
	for k := range c.count {
		at := int64(k)*step + int64(f.Uint64()%uint64(max(step, 1)))
		if at <= prev {
			at = prev + 1
		}
		prev = at
		m := store.NewMessage{CreatedAt: start.Add(time.Duration(at) * time.Microsecond)}
		switch {
		case c.kind == chat.KindAssistant && k%2 == 1:
			m.Role = message.RoleAssistant
			m.Content = f.Paragraph()
			m.Metadata = schematype.MessageMetadata{
				Model:            "seed-model-1",
				PromptTokens:     f.IntRange(20, 2000),
				CompletionTokens: f.IntRange(20, 800),
			}
		default:
			m.Role = message.RoleUser
			m.SenderID = ids[people[f.IntN(len(people))]]
			m.Content = chatLine(f)
		}
		if k < from {
			continue // stored by an earlier run; made all the same, for the random sequence
		}
		batch = append(batch, m)
		if len(batch) == size || k == c.count-1 {
			if err := emit(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// chatLine is one message as people write them: mostly a sentence or a
// question, sometimes a quick reaction.
func chatLine(f *gofakeit.Faker) string {
	switch n := f.IntN(20); {
	case n < 9:
		return f.Sentence()
	case n < 13:
		return f.Question()
	case n < 15:
		return f.HackerPhrase()
	case n < 17:
		return f.Interjection() + "! " + f.Emoji()
	case n < 19:
		return f.Phrase()
	default:
		return f.Paragraph()
	}
}

// --- running it ---

// seedStats counts what was written.
type seedStats struct {
	users, chats, memberships, messages int
	usersTime, chatsTime, messagesTime  time.Duration
}

func seed(ctx context.Context, stdout, stderr io.Writer, cfg database.Config, o seedOptions) (err error) {
	if o.seed == 0 {
		o.seed = rand.Uint64N(1<<31) + 1
		fmt.Fprintf(stderr, "seed: picked --seed %d\n", o.seed)
	}
	db, err := database.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer db.Close()
	err = database.Migrate(ctx, db, database.WithProgress(func(m database.Migration) {
		fmt.Fprintf(stderr, "seed: applied migration %s\n", m.File())
	}))
	if err != nil {
		return fmt.Errorf("seed: migrate: %w", err)
	}
	workers := o.workers
	if workers == 0 {
		workers = 1
		if db.Dialect() == database.Postgres {
			workers = 4
		}
	}
	if limit := db.Stats().MaxOpenConnections; limit > 0 && workers > limit {
		workers = limit
	}

	plan := newSeedPlan(o.seed, o.users, o.chats, o.messages)
	began := time.Now()
	end := began.UTC().Truncate(time.Second)
	// The seeded world begins when its history does: users and chats are
	// created at the start of the 30 days the messages span, so that each
	// chat's import appends to its history (store.ImportMessages refuses a
	// message older than the chat's newest).
	historyStart := end.Add(-seedHistory)
	s := store.New(db, store.WithClock(func() time.Time { return historyStart }))
	prev, err := loadSeedStored(viewer.SystemContext(ctx), db, plan)
	switch {
	case errors.Is(err, errSeedMismatch):
		return fmt.Errorf("seed: seed %d in %s: %w: use the counts it was loaded with, another --seed, or an empty database", o.seed, db.URL(), err)
	case err != nil:
		return err
	case len(plan.users) > 0 && prev.complete(plan):
		return fmt.Errorf("seed: seed %d is already loaded in %s (%s); use another --seed, or an empty database", o.seed, db.URL(), prev.describe(plan))
	case !prev.empty():
		fmt.Fprintf(stderr, "seed: resuming seed %d in %s: %s are stored already\n", o.seed, db.URL(), prev.describe(plan))
	}
	// Interrupted, say what is stored, as the database has it: a write the
	// cancellation caught may have committed or not.
	defer func() {
		if err == nil || ctx.Err() == nil {
			return
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		settle(lctx, db, 5*time.Second)
		now, lerr := loadSeedStored(viewer.SystemContext(lctx), db, plan)
		if lerr != nil {
			err = errors.Join(err, lerr)
			return
		}
		err = fmt.Errorf("seed: interrupted: seed %d in %s holds %s; run the same command again, with --seed %d, to load the rest (%w)", o.seed, db.URL(), now.describe(plan), o.seed, ctx.Err())
	}()
	mode := o.progress
	if mode == "auto" {
		mode = "lines"
		if isTerminal(stderr) {
			mode = "bar"
		}
	}
	if mode != "none" {
		fmt.Fprintf(stderr, "seed: %d users, %d chats, %d messages into %s (seed %d, %d worker(s))\n",
			o.users, o.chats, o.messages, db.URL(), o.seed, workers)
	}
	var st seedStats

	// Users, as the system: signing up is the platform's job.
	ids := make([]uuid.UUID, len(plan.users))
	var missing []int
	for i := range plan.users {
		if id, ok := prev.users[i]; ok {
			ids[i] = id
		} else {
			missing = append(missing, i)
		}
	}
	t0 := time.Now()
	pr := newProgress(stderr, mode, "users", int64(len(missing)))
	err = parallel(ctx, workers, len(missing), func(ctx context.Context, k int) error {
		i := missing[k]
		u, err := s.CreateUser(viewer.SystemContext(ctx), store.NewUser{Email: plan.users[i].email, DisplayName: plan.users[i].name})
		if err != nil {
			return fmt.Errorf("seed: user %s: %w", plan.users[i].email, err)
		}
		ids[i] = u.ID
		pr.add(1)
		return nil
	})
	pr.done(err)
	if err != nil {
		return err
	}
	st.users, st.usersTime = len(missing), time.Since(t0)

	// Chats, each as the user who creates it.
	chatIDs := make([]uuid.UUID, len(plan.chats))
	missing = missing[:0]
	for i := range plan.chats {
		if id, ok := prev.chats[i]; ok {
			chatIDs[i] = id
		} else {
			missing = append(missing, i)
		}
	}
	var memberships atomic.Int64
	t0 = time.Now()
	pr = newProgress(stderr, mode, "chats", int64(len(missing)))
	err = parallel(ctx, workers, len(missing), func(ctx context.Context, k int) error {
		i := missing[k]
		c := plan.chats[i]
		as := viewer.NewContext(ctx, ids[c.creator])
		var (
			made *store.Chat
			err  error
		)
		switch c.kind {
		case chat.KindDirect:
			made, _, err = s.CreateDirectChat(as, ids[c.members[0]])
		case chat.KindGroup:
			others := make([]uuid.UUID, len(c.members))
			for k, m := range c.members {
				others[k] = ids[m]
			}
			made, err = s.CreateGroupChat(as, c.title, others)
		default:
			made, err = s.CreateAssistantChat(as, c.title)
		}
		if err != nil {
			return fmt.Errorf("seed: %s chat %d: %w", c.kind, i+1, err)
		}
		chatIDs[i] = made.ID
		memberships.Add(int64(1 + len(c.members)))
		pr.add(1)
		return nil
	})
	pr.done(err)
	if err != nil {
		return err
	}
	st.chats, st.memberships, st.chatsTime = len(missing), int(memberships.Load()), time.Since(t0)

	// Messages, imported in bulk. The system viewer imports for every sender;
	// the busiest chats go first so that the workers finish together.
	order := make([]int, len(plan.chats))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return plan.chats[order[a]].count > plan.chats[order[b]].count })
	var written atomic.Int64
	t0 = time.Now()
	_, _, storedMessages := prev.totals()
	pr = newProgress(stderr, mode, "messages", int64(plan.messageCount()-storedMessages))
	err = parallel(ctx, workers, len(order), func(ctx context.Context, k int) error {
		i := order[k]
		return plan.messages(i, ids, end, o.batch, prev.messages[i], func(batch []store.NewMessage) error {
			n, err := s.ImportMessages(viewer.SystemContext(ctx), chatIDs[i], batch)
			if err != nil {
				return fmt.Errorf("seed: import into chat %d: %w", i+1, err)
			}
			written.Add(int64(n))
			pr.add(int64(n))
			return nil
		})
	})
	pr.done(err)
	if err != nil {
		return err
	}
	st.messages, st.messagesTime = int(written.Load()), time.Since(t0)

	total := time.Since(began)
	fmt.Fprintf(stdout, "seeded %s with seed %d in %s\n", db.URL(), o.seed, total.Round(time.Millisecond))
	if !prev.empty() {
		fmt.Fprintf(stdout, "  resumed: %s were stored already; this run added\n", prev.describe(plan))
	}
	fmt.Fprintf(stdout, "  users        %9d  %s\n", st.users, rate(st.users, st.usersTime))
	fmt.Fprintf(stdout, "  chats        %9d  %s (with %d memberships)\n", st.chats, rate(st.chats, st.chatsTime), st.memberships)
	fmt.Fprintf(stdout, "  messages     %9d  %s\n", st.messages, rate(st.messages, st.messagesTime))
	rows := st.users + st.chats + st.memberships + st.messages
	fmt.Fprintf(stdout, "  all rows     %9d  %s\n", rows, rate(rows, total))
	return nil
}

// seedHistory is how far back the seeded messages go.
const seedHistory = 30 * 24 * time.Hour

// rate prints n rows in d as rows per second.
func rate(n int, d time.Duration) string {
	r := 0.0
	if d > 0 {
		r = float64(n) / d.Seconds()
	}
	return fmt.Sprintf("in %-9s %9.0f rows/s", d.Round(time.Millisecond), r)
}

// parallel runs fn(i) for i in [0, n) on workers goroutines, in order of i as
// far as workers allow, and stops at the first error.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(workers, max(n, 1)) {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := fn(ctx, i); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows how far a phase got: a bar on a terminal, a line every few
// seconds otherwise, or nothing. It is safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	mode  string
	what  string
	total int64
	n     int64
	start time.Time
	last  time.Time
	bar   *progressbar.ProgressBar
}

// progressEvery is how often the "lines" mode prints.
const progressEvery = 2 * time.Second

func newProgress(w io.Writer, mode, what string, total int64) *progress {
	p := &progress{w: w, mode: mode, what: what, total: total, start: time.Now()}
	p.last = p.start
	if mode == "bar" && total > 0 {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(fmt.Sprintf("%-8s", what)),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(40),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += n
	switch {
	case p.bar != nil:
		p.bar.Add64(n)
	case p.mode == "lines" && time.Since(p.last) >= progressEvery:
		p.last = time.Now()
		p.line()
	}
}

// done ends the phase, which err ended early when it is not nil: the bar is
// completed, or left where the phase stopped, or a last line printed.
func (p *progress) done(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.bar != nil && err == nil:
		p.bar.Finish()
	case p.bar != nil:
		p.bar.Exit()
	case p.mode == "lines" && p.total > 0:
		p.line()
	}
}

func (p *progress) line() {
	el := time.Since(p.start)
	fmt.Fprintf(p.w, "seed: %-8s %d/%d (%d%%), %.0f rows/s\n", p.what, p.n, p.total, p.n*100/max(p.total, 1), float64(p.n)/max(el.Seconds(), 1e-9))
}

// settle waits, for at most bound, until the statements that were running on
// the server when it was called have ended. A statement whose context is
// cancelled returns at once on the client, but the server may still be
// running it, and commit it, after that: counting before it ends would say
// less is stored than there is. On SQLite, statements run in this process and
// have ended when they return; there is nothing to wait for. It waits for
// other clients' statements of that moment too, which is why it is bounded.
func settle(ctx context.Context, db *database.DB, bound time.Duration) {
	if db.Dialect() != database.Postgres {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var at time.Time
	if err := db.SQL().QueryRowContext(ctx, "SELECT now()").Scan(&at); err != nil {
		return
	}
	for {
		var running int
		err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query_start < $1`, at).Scan(&running)
		if err != nil || running == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
