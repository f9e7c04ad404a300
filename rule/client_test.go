package rule_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect/sql"
	"entgo.io/ent/entql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/credential"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	entmigrate "github.com/chatdb/chatdb/ent/migrate"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/viewer"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// TestClientLeaksNothing proves, through the generated ent client as a user
// viewer, that no query answers differently depending on data the viewer may
// not see. It builds two worlds that are equal in everything the viewers may
// read and differ in everything they may not (another chat's title, messages,
// members and roles; a deleted user's profile; password hashes; a deleted
// message's original text; a deleted chat's content), then runs, as a
// stranger, a removed member and a deleted user, every query shape the client
// offers on every entity: all rows and every column, an order by every
// column, a group by every column, an equality and a range predicate on every
// column with every value either world holds, and every edge predicate
// (Has<Edge> and Has<Edge>With on every column of the edge's other end, with
// the same values). Entities, columns and edges are read from ent's generated
// metadata (the tables of ent/migrate, each entity's Columns, the fields of its
// Edges struct), so a new one is covered without touching this test. Both
// worlds' transcripts must be equal.
func TestClientLeaksNothing(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		a, b := buildWorld(t, target, "A"), buildWorld(t, target, "B")
		probes := probeValues(t, a, b)
		for _, v := range []struct {
			name string
			id   uuid.UUID
		}{{"stranger", ids("viewer")}, {"removed member", ids("removed")}, {"deleted user", ids("deleted")}} {
			t.Run(v.name, func(t *testing.T) {
				ta := transcript(t, a, v.id, probes)
				tb := transcript(t, b, v.id, probes)
				require.Equal(t, len(ta), len(tb))
				for i := range ta {
					require.Equal(t, ta[i], tb[i], "the answer depends on data %s may not see", v.name)
				}
				t.Logf("%d queries answered alike", len(ta))
			})
		}
	})
}

var (
	namespace = uuid.MustParse("6f1c4c8e-2b6a-4c55-9a51-0a4cbb2c1d10")
	base      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// ids names a row by a word, the same in both worlds.
func ids(name string) uuid.UUID { return uuid.NewSHA1(namespace, []byte(name)) }

// at is a time, the same in both worlds for the same minute.
func at(minute int) time.Time { return base.Add(time.Duration(minute) * time.Minute) }

// buildWorld writes the cast into a fresh database, as the system, with fixed
// IDs and times; secret goes into everything the viewers may not see.
func buildWorld(t *testing.T, target dbtest.Target, secret string) *database.DB {
	t.Helper()
	db := dbtest.Open(t, target)
	// In one transaction: messages are appended in one (schema's sequence
	// hook).
	err := db.WithTxContext(viewer.SystemContext(t.Context()), func(ctx context.Context, tx *ent.Tx) error {
		writeWorld(t, ctx, tx.Client(), secret)
		return nil
	})
	require.NoError(t, err)
	return db
}

// writeWorld writes buildWorld's rows through c.
func writeWorld(t *testing.T, ctx context.Context, c *ent.Client, secret string) {
	must := func(err error) {
		t.Helper()
		require.NoError(t, err)
	}
	for _, name := range []string{"viewer", "removed", "public", "insider", "extra"} {
		must(c.User.Create().SetID(ids(name)).SetEmail(name + "@example.com").SetDisplayName(name).
			SetCreatedAt(at(0)).SetUpdatedAt(at(0)).Exec(ctx))
	}
	// The deleted user's profile is theirs only.
	must(c.User.Create().SetID(ids("deleted")).SetEmail("deleted-" + strings.ToLower(secret) + "@example.com").
		SetDisplayName("Deleted " + secret).SetCreatedAt(at(0)).SetUpdatedAt(at(1)).SetDeletedAt(at(1)).Exec(ctx))
	for _, u := range []string{"public", "deleted"} {
		must(c.Credential.Create().SetID(ids("cred-" + u)).SetUserID(ids(u)).SetPasswordHash("$hash$" + u + "$" + secret).
			SetCreatedAt(at(0)).SetUpdatedAt(at(0)).Exec(ctx))
	}

	chatAt := map[string]time.Time{"public": at(20), "secret": at(30), "gone": at(40), "direct": at(50)}
	if secret == "B" {
		chatAt["secret"], chatAt["gone"], chatAt["direct"] = at(31), at(41), at(51)
	}
	newChat := func(name string, kind chat.Kind, title, by string) *ent.ChatCreate {
		cc := c.Chat.Create().SetID(ids(name)).SetKind(kind).SetCreatedBy(ids(by)).
			SetCreatedAt(at(2)).SetUpdatedAt(chatAt[name]).SetLastMessageAt(chatAt[name])
		if title != "" {
			cc.SetTitle(title)
		}
		return cc
	}
	must(newChat("public", chat.KindGroup, "Public", "public").Exec(ctx))
	must(newChat("secret", chat.KindGroup, "Secret "+secret, "insider").Exec(ctx))
	must(newChat("gone", chat.KindGroup, "Gone "+secret, "viewer").SetDeletedAt(at(42)).Exec(ctx))
	must(newChat("direct", chat.KindDirect, "", "public").SetDirectKey(schema.DirectKey(ids("public"), ids("insider"))).Exec(ctx))

	member := func(chatName, userName string, role membership.Role) *ent.MembershipCreate {
		return c.Membership.Create().SetID(ids("mb-" + chatName + "-" + userName)).SetChatID(ids(chatName)).SetUserID(ids(userName)).
			SetRole(role).SetJoinedAt(at(3)).SetChatLastMessageAt(chatAt[chatName])
	}
	for _, u := range []string{"viewer", "removed", "deleted"} {
		must(member("public", u, membership.RoleMember).Exec(ctx))
	}
	must(member("public", "public", membership.RoleOwner).Exec(ctx))
	secretRole := membership.RoleAdmin
	if secret == "B" {
		secretRole = membership.RoleMember
	}
	must(member("secret", "insider", membership.RoleOwner).Exec(ctx))
	s1 := member("secret", "public", secretRole)
	if secret == "A" {
		s1.SetMuted(true)
		must(member("secret", "extra", membership.RoleMember).Exec(ctx))
	}
	must(s1.Exec(ctx))
	// The removed member was in the secret chat; their membership is gone, their
	// message stays.
	must(member("secret", "removed", membership.RoleMember).Exec(ctx))
	must(member("gone", "viewer", membership.RoleOwner).Exec(ctx))
	must(member("gone", "public", membership.RoleMember).Exec(ctx))
	must(member("direct", "public", membership.RoleOwner).Exec(ctx))
	must(member("direct", "insider", membership.RoleOwner).Exec(ctx))

	say := func(name, chatName, from, content string, minute int) *ent.MessageCreate {
		mc := c.Message.Create().SetID(ids(name)).SetChatID(ids(chatName)).SetRole(message.RoleUser).
			SetContent(content).SetCreatedAt(at(minute))
		if from != "" {
			mc.SetSenderID(ids(from))
		}
		return mc
	}
	must(say("p1", "public", "public", "hello all", 10).Exec(ctx))
	must(say("p2", "public", "deleted", "from the deleted", 11).Exec(ctx))
	must(say("p3", "public", "public", "oops, the password is "+secret, 12).
		SetMetadata(schematype.MessageMetadata{Model: "model-" + secret}).Exec(ctx))
	must(say("p4", "public", "viewer", "what was that?", 13).SetReplyToID(ids("p3")).Exec(ctx))
	// Deleting erases the text, which differed.
	must(c.Message.UpdateOneID(ids("p3")).SetDeletedAt(at(14)).Exec(ctx))

	must(say("s1", "secret", "insider", "secret one "+secret, 30).Exec(ctx))
	must(say("s2", "secret", "public", "secret two "+secret, 31).
		SetMetadata(schematype.MessageMetadata{Model: "model-" + secret, PromptTokens: len(secret)}).Exec(ctx))
	must(say("s3", "secret", "removed", "said before leaving "+secret, 32).Exec(ctx))
	if secret == "A" {
		must(say("s4", "secret", "extra", "only in A", 33).SetReplyToID(ids("s1")).Exec(ctx))
	}
	must(say("z1", "gone", "viewer", "gone "+secret, 40).Exec(ctx))
	must(say("d1", "direct", "insider", "whisper "+secret, 50).Exec(ctx))
	must(c.Membership.DeleteOneID(ids("mb-secret-removed")).Exec(ctx))
}

// entity is what the test knows of one entity of the client: its generated
// metadata, and how to run a query of it.
type entity struct {
	name    string
	table   string
	columns []string
	// typ is the entity's generated struct; its Edges field, when it has one,
	// holds one field per edge.
	typ   reflect.Type
	query func(*ent.Client) probeQuery
}

// probeQuery is the part of a generated query type the test drives.
type probeQuery interface {
	where(entql.P)
	scan(ctx context.Context, modify func(*sql.Selector), v any) error
	count(ctx context.Context) (int, error)
}

type userQ struct{ q *ent.UserQuery }

func (x userQ) where(p entql.P)                        { x.q.Filter().Where(p) }
func (x userQ) count(ctx context.Context) (int, error) { return x.q.Count(ctx) }
func (x userQ) scan(ctx context.Context, m func(*sql.Selector), v any) error {
	return x.q.Modify(m).Scan(ctx, v)
}

type chatQ struct{ q *ent.ChatQuery }

func (x chatQ) where(p entql.P)                        { x.q.Filter().Where(p) }
func (x chatQ) count(ctx context.Context) (int, error) { return x.q.Count(ctx) }
func (x chatQ) scan(ctx context.Context, m func(*sql.Selector), v any) error {
	return x.q.Modify(m).Scan(ctx, v)
}

type membershipQ struct{ q *ent.MembershipQuery }

func (x membershipQ) where(p entql.P)                        { x.q.Filter().Where(p) }
func (x membershipQ) count(ctx context.Context) (int, error) { return x.q.Count(ctx) }
func (x membershipQ) scan(ctx context.Context, m func(*sql.Selector), v any) error {
	return x.q.Modify(m).Scan(ctx, v)
}

type messageQ struct{ q *ent.MessageQuery }

func (x messageQ) where(p entql.P)                        { x.q.Filter().Where(p) }
func (x messageQ) count(ctx context.Context) (int, error) { return x.q.Count(ctx) }
func (x messageQ) scan(ctx context.Context, m func(*sql.Selector), v any) error {
	return x.q.Modify(m).Scan(ctx, v)
}

type credentialQ struct{ q *ent.CredentialQuery }

func (x credentialQ) where(p entql.P)                        { x.q.Filter().Where(p) }
func (x credentialQ) count(ctx context.Context) (int, error) { return x.q.Count(ctx) }
func (x credentialQ) scan(ctx context.Context, m func(*sql.Selector), v any) error {
	return x.q.Modify(m).Scan(ctx, v)
}

// entities lists the client's entities. TestEntitiesCovered fails when the
// schema gains a table this list does not have.
var entities = []entity{
	{"User", user.Table, user.Columns, reflect.TypeFor[ent.User](),
		func(c *ent.Client) probeQuery { return userQ{c.User.Query()} }},
	{"Chat", chat.Table, chat.Columns, reflect.TypeFor[ent.Chat](),
		func(c *ent.Client) probeQuery { return chatQ{c.Chat.Query()} }},
	{"Membership", membership.Table, membership.Columns, reflect.TypeFor[ent.Membership](),
		func(c *ent.Client) probeQuery { return membershipQ{c.Membership.Query()} }},
	{"Message", message.Table, message.Columns, reflect.TypeFor[ent.Message](),
		func(c *ent.Client) probeQuery { return messageQ{c.Message.Query()} }},
	{"Credential", credential.Table, credential.Columns, reflect.TypeFor[ent.Credential](),
		func(c *ent.Client) probeQuery { return credentialQ{c.Credential.Query()} }},
}

// TestEntitiesCovered keeps the list above complete: every table of the schema
// is an entity TestClientLeaksNothing probes.
func TestEntitiesCovered(t *testing.T) {
	var tables, listed []string
	for _, tb := range entmigrate.Tables {
		tables = append(tables, tb.Name)
	}
	for _, e := range entities {
		listed = append(listed, e.table)
	}
	require.ElementsMatch(t, tables, listed)
}

// edge is one edge of an entity, read from its Edges struct.
type edge struct {
	name   string
	target entity
}

// edgesOf returns e's edges: each exported field of its Edges struct, named by
// its json tag, with the entity its type points to.
func edgesOf(t *testing.T, e entity) []edge {
	t.Helper()
	edges, ok := e.typ.FieldByName("Edges")
	if !ok {
		return nil
	}
	var out []edge
	for f := range edges.Type.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		typ := f.Type
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		i := slices.IndexFunc(entities, func(x entity) bool { return x.name == typ.Name() })
		require.GreaterOrEqual(t, i, 0, "edge %s.%s leads to an entity the test does not know", e.name, name)
		out = append(out, edge{name: name, target: entities[i]})
	}
	return out
}

// probeValues returns, for every table and column, every value either world
// holds, as the driver returns them (so that they compare as stored).
func probeValues(t *testing.T, worlds ...*database.DB) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, e := range entities {
		for _, col := range e.columns {
			key := e.table + "." + col
			seen := map[string]bool{}
			for _, db := range worlds {
				rows, err := db.SQL().QueryContext(t.Context(), "SELECT DISTINCT "+col+" FROM "+e.table)
				require.NoError(t, err)
				for rows.Next() {
					var v any
					require.NoError(t, rows.Scan(&v))
					if b, ok := v.([]byte); ok {
						v = string(b)
					}
					if v == nil || seen[fmt.Sprint(v)] {
						continue
					}
					seen[fmt.Sprint(v)] = true
					out[key] = append(out[key], v)
				}
				require.NoError(t, rows.Err())
				rows.Close()
			}
			sort.Slice(out[key], func(i, j int) bool { return fmt.Sprint(out[key][i]) < fmt.Sprint(out[key][j]) })
		}
	}
	return out
}

// transcript runs every query shape as user v on db and returns one line per
// query: the query and its answer.
func transcript(t *testing.T, db *database.DB, v uuid.UUID, probes map[string][]any) []string {
	t.Helper()
	ctx := viewer.NewContext(t.Context(), v)
	client := db.Client()
	var lines []string
	answer := func(what string, res any, err error) {
		switch {
		case errors.Is(err, privacy.Deny):
			res = "denied"
		case err != nil:
			t.Fatalf("%s: %v", what, err)
		}
		lines = append(lines, fmt.Sprintf("%s => %v", what, res))
	}
	count := func(e entity, p entql.P) (int, error) {
		q := e.query(client)
		if p != nil {
			q.where(p)
		}
		return q.count(ctx)
	}
	edgesSeen := 0
	for _, e := range entities {
		n, err := count(e, nil)
		answer(e.name+" count", n, err)

		// Every column of every row, and each column alone.
		rows, err := scanColumns(ctx, e.query(client), e.columns, nil)
		answer(e.name+" all columns", rows, err)
		for _, col := range e.columns {
			rows, err := scanColumns(ctx, e.query(client), []string{"id", col}, func(s *sql.Selector) {
				s.OrderBy(sql.Asc(s.C(col)), sql.Asc(s.C("id")))
			})
			answer(e.name+" order by "+col, rows, err)
			groups, err := scanGroups(ctx, e.query(client), col)
			answer(e.name+" group by "+col, groups, err)
			for _, val := range probes[e.table+"."+col] {
				n, err := count(e, entql.FieldEQ(col, val))
				answer(fmt.Sprintf("%s where %s = %v", e.name, col, val), n, err)
				n, err = count(e, entql.FieldGT(col, val))
				answer(fmt.Sprintf("%s where %s > %v", e.name, col, val), n, err)
			}
		}
		for _, ed := range edgesOf(t, e) {
			edgesSeen++
			n, err := count(e, entql.HasEdge(ed.name))
			answer(fmt.Sprintf("%s has %s", e.name, ed.name), n, err)
			for _, col := range ed.target.columns {
				for _, val := range probes[ed.target.table+"."+col] {
					n, err := count(e, entql.HasEdgeWith(ed.name, entql.FieldEQ(col, val)))
					answer(fmt.Sprintf("%s has %s with %s = %v", e.name, ed.name, col, val), n, err)
				}
			}
		}
	}
	require.Positive(t, edgesSeen, "no edge was probed: the edge metadata was not read")
	return lines
}

// scanColumns selects cols of every row the query returns, each as text (a
// NULL as <null>), in order, or sorted when the query gives none.
func scanColumns(ctx context.Context, q probeQuery, cols []string, order func(*sql.Selector)) ([]string, error) {
	fields := make([]reflect.StructField, len(cols))
	for i, c := range cols {
		fields[i] = reflect.StructField{Name: fmt.Sprintf("V%d", i), Type: reflect.TypeFor[sql.NullString](),
			Tag: reflect.StructTag(`sql:"` + c + `"`)}
	}
	rowType := reflect.StructOf(fields)
	slice := reflect.New(reflect.SliceOf(rowType))
	err := q.scan(ctx, func(s *sql.Selector) {
		sel := make([]string, len(cols))
		for i, c := range cols {
			sel[i] = s.C(c)
		}
		s.Select(sel...)
		if order != nil {
			order(s)
		}
	}, slice.Interface())
	if err != nil {
		return nil, err
	}
	out := make([]string, slice.Elem().Len())
	for i := range out {
		row := slice.Elem().Index(i)
		vals := make([]string, len(cols))
		for j := range cols {
			ns := row.Field(j).Interface().(sql.NullString)
			vals[j] = "<null>"
			if ns.Valid {
				vals[j] = ns.String
			}
		}
		out[i] = strings.Join(vals, "|")
	}
	if order == nil {
		sort.Strings(out)
	}
	return out, nil
}

// scanGroups groups the query's rows by col and counts each group.
func scanGroups(ctx context.Context, q probeQuery, col string) ([]string, error) {
	var groups []struct {
		Value sql.NullString `sql:"value"`
		N     int            `sql:"n"`
	}
	err := q.scan(ctx, func(s *sql.Selector) {
		s.Select(sql.As(s.C(col), "value"), sql.As(sql.Count("*"), "n")).GroupBy(s.C(col))
	}, &groups)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = fmt.Sprintf("%v:%v=%d", g.Value.Valid, g.Value.String, g.N)
	}
	sort.Strings(out)
	return out, nil
}
