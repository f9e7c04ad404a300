// Package rule states chatdb's access rules, each once, as builders of SQL
// predicates (entgo.io/ent/dialect/sql). The same builder serves both places a
// rule is enforced:
//
//   - the ent privacy policies in package schema, which add it to the WHERE
//     clause of every query and update the generated client runs for a user
//     viewer: rule.CanReadMessage(rule.Of(s), uid);
//   - the store's hand-written statements, which are rendered once, at start-up,
//     from the same builders with their operands given as SQL text (a column
//     alias, a $n placeholder): rule.CanReadMessage(rule.Alias("m"), rule.Ref("$4")).
//
// So a reader finds each rule in one place, and the store's privacy suite holds
// the two paths to the same answers (store.WithPolicyBackend).
//
// Who may do what (the system viewer may do everything; a context without a
// viewer, nothing; the rest is for a user viewer):
//
//   - Live: a user exists and is not soft-deleted. A deleted user can do
//     nothing: every rule below starts from a live viewer.
//   - Active: live, and not suspended. Writing what others read (messages,
//     chats, members) needs an active viewer; reading, marking read, leaving
//     and deleting one's own messages need a live one.
//   - Member: the viewer is a member of a live chat, with a role when one is
//     asked for. A soft-deleted chat is gone for everybody.
//   - Users: a live viewer reads every live user's public profile (people find
//     each other by email); deleted users are not seen. Credentials (password
//     hashes) are read by the system only.
//   - Chats, memberships, messages: read by the chat's live members.
//
// The rules about writes, which depend on the mutation's fields as well, are
// in schema/policy.go and use the predicates here.
package rule

import (
	"entgo.io/ent/dialect/sql"

	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/user"
)

// Ref returns an operand written into the statement as the SQL text expr: a
// column of the enclosing statement ("m.chat_id") or a placeholder of a
// statement rendered once ("$2"). Any other operand is a value, bound as a
// parameter. expr must come from code, never from input.
func Ref(expr string) any { return sql.Raw(expr) }

// Row gives the operand of each column of the row a rule decides on.
type Row func(column string) any

// Of returns the Row of the table a selector reads: for ent policies.
func Of(s *sql.Selector) Row {
	return func(c string) any { return column(s.C(c)) }
}

// Alias returns the Row of a table alias in a hand-written statement.
func Alias(alias string) Row {
	return func(c string) any { return sql.Raw(alias + "." + c) }
}

// Live is true when the user v exists and is not deleted.
//
//	EXISTS (SELECT 1 FROM users rv WHERE rv.id = v AND rv.deleted_at IS NULL)
func Live(v any) *sql.Predicate {
	return viewerRow(v, false)
}

// Active is Live, and the user v is not suspended.
func Active(v any) *sql.Predicate {
	return viewerRow(v, true)
}

func viewerRow(v any, active bool) *sql.Predicate {
	t := sql.Table(user.Table).As("rv")
	q := sql.Select(t.C(user.FieldID)).From(t).Where(sql.And(
		eq(column(t.C(user.FieldID)), v),
		isNull(column(t.C(user.FieldDeletedAt))),
	))
	if active {
		q.Where(eq(column(t.C(user.FieldStatus)), literal(string(user.StatusActive))))
	}
	return sql.Exists(q)
}

// Member is true when the user v is live and a member of the live chat c, with
// one of roles when any are given.
//
//	EXISTS (SELECT rm.id FROM memberships rm WHERE rm.chat_id = c AND rm.user_id = v
//	        [AND rm.role IN (roles)])
//	AND EXISTS (SELECT rc.id FROM chats rc WHERE rc.id = c AND rc.deleted_at IS NULL)
//	AND Live(v)
//
// With c and v parameters, each EXISTS is evaluated once per statement: three
// probes of unique indexes (memberships_chat_user_key, and the chats and users
// primary keys), whatever the size of the chat.
func Member(c, v any, roles ...membership.Role) *sql.Predicate {
	return sql.And(hasMembership(c, v, roles...), chatLive(c), Live(v))
}

// hasMembership is true when v has a membership of chat c, with one of roles
// when any are given: Member without the liveness of the chat and the user.
func hasMembership(c, v any, roles ...membership.Role) *sql.Predicate {
	mt := sql.Table(membership.Table).As("rm")
	q := sql.Select(mt.C(membership.FieldID)).From(mt).
		Where(sql.And(
			eq(column(mt.C(membership.FieldChatID)), c),
			eq(column(mt.C(membership.FieldUserID)), v),
		))
	if len(roles) > 0 {
		q.Where(roleIn(column(mt.C(membership.FieldRole)), roles...))
	}
	return sql.Exists(q)
}

// chatLive is true when the chat c exists and is not deleted.
func chatLive(c any) *sql.Predicate {
	ct := sql.Table(chat.Table).As("rc")
	return sql.Exists(sql.Select(ct.C(chat.FieldID)).From(ct).Where(sql.And(
		eq(column(ct.C(chat.FieldID)), c),
		isNull(column(ct.C(chat.FieldDeletedAt))),
	)))
}

// CanReadUser is the read rule of users: a live user's profile, to a live
// viewer.
func CanReadUser(u Row, v any) *sql.Predicate {
	return sql.And(isNull(u(user.FieldDeletedAt)), Live(v))
}

// CanReadChat is the read rule of chats: the chat's live members. It is Member
// of the row's chat, whose liveness is the row's own deleted_at.
func CanReadChat(c Row, v any) *sql.Predicate {
	return sql.And(isNull(c(chat.FieldDeletedAt)), hasMembership(c(chat.FieldID), v), Live(v))
}

// CanReadMembership is the read rule of memberships: the members of its chat.
func CanReadMembership(mb Row, v any) *sql.Predicate {
	return Member(mb(membership.FieldChatID), v)
}

// CanReadMessage is the read rule of messages: the members of its chat.
func CanReadMessage(m Row, v any) *sql.Predicate {
	return Member(m(message.FieldChatID), v)
}

// OwnMembership is CanReadMembership as the viewer reads their own memberships
// (the inbox): the row mb is the viewer's, its chat c is live, the viewer is
// live. It grants what Member grants, read from the viewer's side, where the
// membership row is the one the statement starts from.
func OwnMembership(mb, c Row, v any) *sql.Predicate {
	return sql.And(
		eq(mb(membership.FieldUserID), v),
		isNull(c(chat.FieldDeletedAt)),
		Live(v),
	)
}

// ReplyInChat is true when the message reply (an operand naming a message ID)
// is a message of chat c. A reply never points into another chat: a reader of a
// message may follow it, and filter by it, only within the chat.
func ReplyInChat(reply, c any) *sql.Predicate {
	t := sql.Table(message.Table).As("rr")
	return sql.Exists(sql.Select(t.C(message.FieldID)).From(t).Where(sql.And(
		eq(column(t.C(message.FieldID)), reply),
		eq(column(t.C(message.FieldChatID)), c),
	)))
}

// MayAppend is the rule of a new message's chat c, as the message's role and
// sender allow: a chat the viewer v may read (CanReadChat) and may write to
// (Appendable). Which roles and senders a viewer may use is decided in Go,
// before it is asked: see schema's AppendRole.
func MayAppend(c Row, v any, assistantOnly bool) *sql.Predicate {
	return sql.And(CanReadChat(c, v), Appendable(c, v, assistantOnly))
}

// Appendable is the part of MayAppend that a chat the viewer reads must also
// meet: it is not archived, the viewer is active, and it is an assistant chat
// when assistantOnly (assistant and tool messages). A statement that has
// checked CanReadChat already asks this part alone.
func Appendable(c Row, v any, assistantOnly bool) *sql.Predicate {
	ps := []*sql.Predicate{
		isNull(c(chat.FieldArchivedAt)),
		Active(v),
	}
	if assistantOnly {
		ps = append(ps, eq(c(chat.FieldKind), literal(string(chat.KindAssistant))))
	}
	return sql.And(ps...)
}

// Render returns p as SQL text in dialect, for a statement rendered once. It
// panics if p binds a parameter: rendered rules take their operands as Refs.
func Render(dialect string, p *sql.Predicate) string {
	p.SetDialect(dialect)
	q, args := p.Query()
	if len(args) > 0 {
		panic("rule: a rendered rule binds parameters; give its operands as Refs")
	}
	return q
}

// column is an operand naming a column as ent's builder does (quoted for the
// dialect the statement is rendered in).
type column string

// operand writes x: a column as an identifier, a Ref as its text, anything
// else as a bound parameter.
func operand(b *sql.Builder, x any) *sql.Builder {
	if c, ok := x.(column); ok {
		return b.Ident(string(c))
	}
	return b.Arg(x)
}

// eq is x = y, for operands on both sides.
func eq(x, y any) *sql.Predicate {
	return sql.P(func(b *sql.Builder) {
		operand(operand(b, x).WriteOp(sql.OpEQ), y)
	})
}

// isNull is x IS NULL, for an operand.
func isNull(x any) *sql.Predicate {
	return sql.P(func(b *sql.Builder) {
		operand(b, x).WriteString(" IS NULL")
	})
}

// roleIn is x IN (roles), the roles written as literals.
func roleIn(x any, roles ...membership.Role) *sql.Predicate {
	return sql.P(func(b *sql.Builder) {
		operand(b, x).WriteString(" IN (")
		for i, r := range roles {
			if i > 0 {
				b.Comma()
			}
			b.Arg(literal(string(r)))
		}
		b.WriteString(")")
	})
}

// literal is an SQL string literal of an enum value: code constants only,
// validated by ent, never input.
func literal(s string) any { return sql.Raw("'" + s + "'") }

// Direct is true when c is a direct chat. Both users of a direct chat own it,
// and nobody else joins it: roles in it never change.
func Direct(c any) *sql.Predicate {
	t := sql.Table(chat.Table).As("rk")
	return sql.Exists(sql.Select(t.C(chat.FieldID)).From(t).Where(sql.And(
		eq(column(t.C(chat.FieldID)), c),
		eq(column(t.C(chat.FieldKind)), literal(string(chat.KindDirect))),
	)))
}

// Own is true on the membership row mb when it is the viewer v's.
func Own(mb Row, v any) *sql.Predicate {
	return eq(mb(membership.FieldUserID), v)
}

// NotOwner is true on a membership row whose role is not owner: what admins
// may remove or change.
func NotOwner(mb Row) *sql.Predicate {
	return sql.P(func(b *sql.Builder) {
		operand(b, mb(membership.FieldRole)).WriteOp(sql.OpNEQ)
		b.Arg(literal(string(membership.RoleOwner)))
	})
}

// Sent is true on the message row m when the viewer v sent it.
func Sent(m Row, v any) *sql.Predicate {
	return eq(m(message.FieldSenderID), v)
}

// CanUpdateOwnMembership is the rule of a member's writes to their own
// membership row mb (read position, muted): the row is the viewer v's (Own),
// and v is a live member of its live chat (Member). A statement that has
// checked Member for the chat already asks Own alone.
func CanUpdateOwnMembership(mb Row, v any) *sql.Predicate {
	return sql.And(Own(mb, v), Member(mb(membership.FieldChatID), v))
}
