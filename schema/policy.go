package schema

import (
	"context"
	stdsql "database/sql"
	"slices"
	"strings"

	"entgo.io/ent"
	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	gen "github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/predicate"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/viewer"
)

// Privacy policies. Every query and mutation through the ent client, the store's
// or a raw one, is decided here from the viewer in its context (package viewer):
//
//   - No viewer: denied. Code that forgets to say who acts fails closed.
//   - The system viewer: allowed everything.
//   - A user:
//     users: reads every user's profile (so people can be found by email to start
//     a chat with), never a password hash (blanked by an interceptor); updates only
//     their own row, and not its status; creates and hard-deletes no users.
//     chats: reads only chats they are a member of; creates chats they are the
//     creator of (a direct chat only with a direct_key that names them); bumps
//     last_message_at as any member; changes other fields as owner or admin, and
//     deleted_at as owner only; hard-deletes none.
//     memberships: reads the memberships of their chats; creates the founding
//     owner membership of a chat they created that has no members yet, joins a
//     direct chat that names them (as owner: both of a pair own their chat), and as
//     owner or admin adds others (only owners add owners; in a direct chat only the
//     pair); updates their own read position and muted flag; changes roles as
//     owner, or as admin where neither the old nor the new role is owner; removes
//     themselves, others as owner or admin, owners as owner only.
//     messages: reads the messages of their chats; appends to a live, unarchived
//     chat they are an active, undeleted member of, as the sender of user
//     messages, or without a sender as assistant and tool messages in an assistant
//     chat (system messages are for the system viewer); edits content and
//     metadata of their own messages; soft-deletes their own, or anyone's in a
//     chat they own or administer; hard-deletes none.
//
// Filters are added to the statement itself (a WHERE clause), not checked by an
// extra query, wherever the rule can be written so: reads, updates and deletes.
// An update or delete a filter excludes affects no row, which ent reports as not
// found. Creates cannot be filtered and cost one extra query.
//
// What the policies do not check: values. A member may bump last_message_at to
// any time, and a sender may create a message at any created_at, through a raw
// client; the store is what keeps both increasing. Which fields a user may touch
// is checked; what they write into them is the validators' business.

// Policy of the User.
func (User) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			denyWithoutViewer(),
			allowSystem(),
			// Any signed-in user reads every user's public profile: people look each
			// other up by email to start a chat. Password hashes are blanked by
			// redactPasswordHash.
			privacy.AlwaysAllowRule(),
		},
		Mutation: privacy.MutationPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.UserMutationRuleFunc(userMutationRule),
		},
	}
}

// Interceptors of the User.
func (User) Interceptors() []ent.Interceptor {
	return []ent.Interceptor{redactPasswordHash}
}

// Policy of the Chat.
func (Chat) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.ChatQueryRuleFunc(func(ctx context.Context, q *gen.ChatQuery) error {
				q.Where(func(s *sql.Selector) { s.Where(sql.In(s.C(chat.FieldID), chatsOf(viewerID(ctx)))) })
				return privacy.Allow
			}),
		},
		Mutation: privacy.MutationPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.ChatMutationRuleFunc(chatMutationRule),
		},
	}
}

// Policy of the Membership.
func (Membership) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.MembershipQueryRuleFunc(func(ctx context.Context, q *gen.MembershipQuery) error {
				q.Where(func(s *sql.Selector) { s.Where(sql.In(s.C(membership.FieldChatID), chatsOf(viewerID(ctx)))) })
				return privacy.Allow
			}),
		},
		Mutation: privacy.MutationPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.MembershipMutationRuleFunc(membershipMutationRule),
		},
	}
}

// Policy of the Message.
func (Message) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.MessageQueryRuleFunc(func(ctx context.Context, q *gen.MessageQuery) error {
				q.Where(func(s *sql.Selector) { s.Where(sql.In(s.C(message.FieldChatID), chatsOf(viewerID(ctx)))) })
				return privacy.Allow
			}),
		},
		Mutation: privacy.MutationPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.MessageMutationRuleFunc(messageMutationRule),
		},
	}
}

// denyWithoutViewer denies everything to a context that does not say who acts.
func denyWithoutViewer() privacy.QueryMutationRule {
	return privacy.ContextQueryMutationRule(func(ctx context.Context) error {
		if _, ok := viewer.FromContext(ctx); !ok {
			return privacy.Denyf("no viewer in context")
		}
		return privacy.Skip
	})
}

// allowSystem allows everything to the system viewer.
func allowSystem() privacy.QueryMutationRule {
	return privacy.ContextQueryMutationRule(func(ctx context.Context) error {
		if v, _ := viewer.FromContext(ctx); v.IsSystem() {
			return privacy.Allow
		}
		return privacy.Skip
	})
}

// viewerID returns the signed-in user's ID. The rules that call it run after
// denyWithoutViewer and allowSystem, so the viewer is a user.
func viewerID(ctx context.Context) uuid.UUID {
	v, _ := viewer.FromContext(ctx)
	id, _ := v.UserID()
	return id
}

// chatsOf selects the IDs of the chats user is a member of, with one of roles
// when any are given: SELECT chat_id FROM memberships WHERE user_id = ? [AND role
// IN (...)], served by the index memberships_user_chat_key. The table is aliased so
// that it can sit inside a statement on memberships itself.
func chatsOf(userID uuid.UUID, roles ...membership.Role) *sql.Selector {
	t := sql.Table(membership.Table).As("viewer_memberships")
	s := sql.Select(t.C(membership.FieldChatID)).From(t).Where(sql.EQ(t.C(membership.FieldUserID), userID))
	if len(roles) > 0 {
		vs := make([]any, len(roles))
		for i, r := range roles {
			vs[i] = string(r)
		}
		s.Where(sql.In(t.C(membership.FieldRole), vs...))
	}
	return s
}

// touched returns the fields a mutation sets or clears.
func touched(m ent.Mutation) []string {
	return append(m.Fields(), m.ClearedFields()...)
}

// onlyTouches reports whether m sets or clears no field outside allowed.
func onlyTouches(m ent.Mutation, allowed ...string) bool {
	for _, f := range touched(m) {
		if !slices.Contains(allowed, f) {
			return false
		}
	}
	return true
}

// touchesAny reports whether m sets or clears any of fields.
func touchesAny(m ent.Mutation, fields ...string) bool {
	for _, f := range touched(m) {
		if slices.Contains(fields, f) {
			return true
		}
	}
	return false
}

// allowed returns ctx with an allow decision, for the queries a rule makes to
// decide: they must not be filtered by the rules themselves.
func allowed(ctx context.Context) context.Context {
	return privacy.DecisionContext(ctx, privacy.Allow)
}

func userMutationRule(ctx context.Context, m *gen.UserMutation) error {
	switch {
	case m.Op().Is(ent.OpCreate):
		return privacy.Denyf("only the system creates users")
	case m.Op().Is(ent.OpDelete | ent.OpDeleteOne):
		return privacy.Denyf("users are soft-deleted; only the system deletes rows")
	case touchesAny(m, user.FieldStatus):
		return privacy.Denyf("only the system changes a user's status")
	}
	// A user writes their own row only; for others the update matches no row.
	m.Where(user.ID(viewerID(ctx)))
	return privacy.Allow
}

func chatMutationRule(ctx context.Context, m *gen.ChatMutation) error {
	uid := viewerID(ctx)
	switch {
	case m.Op().Is(ent.OpCreate):
		if by, _ := m.CreatedBy(); by != uid {
			return privacy.Denyf("a chat is created by its creator")
		}
		kind, _ := m.Kind()
		key, hasKey := m.DirectKey()
		if kind == chat.KindDirect {
			if a, b, ok := ParseDirectKey(key); !ok || (a != uid && b != uid) {
				return privacy.Denyf("a direct chat's key names its creator")
			}
		} else if hasKey {
			return privacy.Denyf("only direct chats have a direct key")
		}
		return privacy.Allow
	case m.Op().Is(ent.OpDelete | ent.OpDeleteOne):
		return privacy.Denyf("chats are soft-deleted; only the system deletes rows")
	}
	var roles []membership.Role
	switch {
	case onlyTouches(m, chat.FieldLastMessageAt, chat.FieldUpdatedAt):
		// Appending a message bumps last_message_at: any member.
	case touchesAny(m, chat.FieldDeletedAt):
		roles = []membership.Role{membership.RoleOwner}
	default:
		roles = []membership.Role{membership.RoleOwner, membership.RoleAdmin}
	}
	m.Where(func(s *sql.Selector) { s.Where(sql.In(s.C(chat.FieldID), chatsOf(uid, roles...))) })
	return privacy.Allow
}

func membershipMutationRule(ctx context.Context, m *gen.MembershipMutation) error {
	uid := viewerID(ctx)
	switch {
	case m.Op().Is(ent.OpCreate):
		return membershipCreateRule(ctx, m, uid)
	case m.Op().Is(ent.OpDelete | ent.OpDeleteOne):
		// Yourself; anyone but an owner as owner or admin; an owner as owner.
		m.Where(func(s *sql.Selector) {
			s.Where(sql.Or(
				sql.EQ(s.C(membership.FieldUserID), uid),
				sql.In(s.C(membership.FieldChatID), chatsOf(uid, membership.RoleOwner)),
				sql.And(
					sql.NEQ(s.C(membership.FieldRole), string(membership.RoleOwner)),
					sql.In(s.C(membership.FieldChatID), chatsOf(uid, membership.RoleAdmin)),
				),
			))
		})
		return privacy.Allow
	}
	if touchesAny(m, membership.FieldRole) {
		if r, ok := m.Role(); !ok || r == membership.RoleOwner {
			m.Where(func(s *sql.Selector) {
				s.Where(sql.In(s.C(membership.FieldChatID), chatsOf(uid, membership.RoleOwner)))
			})
		} else {
			m.Where(func(s *sql.Selector) {
				s.Where(sql.Or(
					sql.In(s.C(membership.FieldChatID), chatsOf(uid, membership.RoleOwner)),
					sql.And(
						sql.NEQ(s.C(membership.FieldRole), string(membership.RoleOwner)),
						sql.In(s.C(membership.FieldChatID), chatsOf(uid, membership.RoleAdmin)),
					),
				))
			})
		}
	}
	if !onlyTouches(m, membership.FieldRole) {
		// Read position and muted: your own membership only.
		m.Where(membership.UserID(uid))
	}
	return privacy.Allow
}

// membershipCreateRule decides who may add a member. It costs one query: the
// chat, with the viewer's role in it and whether it has any member.
func membershipCreateRule(ctx context.Context, m *gen.MembershipMutation, uid uuid.UUID) error {
	chatID, _ := m.ChatID()
	userID, _ := m.UserID()
	role, _ := m.Role()
	var rows []struct {
		Kind      string            `sql:"kind"`
		CreatedBy uuid.UUID         `sql:"created_by"`
		DirectKey stdsql.NullString `sql:"direct_key"`
		Mine      stdsql.NullString `sql:"mine"`
		Members   stdsql.NullBool   `sql:"members"`
	}
	err := m.Client().Chat.Query().
		Where(chat.ID(chatID), chat.DeletedAtIsNil()).
		Modify(func(s *sql.Selector) {
			vm := sql.Table(membership.Table).As("viewer_membership")
			members := sql.Table(membership.Table).As("chat_memberships")
			s.LeftJoin(vm).OnP(sql.And(
				sql.ColumnsEQ(s.C(chat.FieldID), vm.C(membership.FieldChatID)),
				sql.EQ(vm.C(membership.FieldUserID), uid),
			))
			s.Select(
				s.C(chat.FieldKind), s.C(chat.FieldCreatedBy), s.C(chat.FieldDirectKey),
				sql.As(vm.C(membership.FieldRole), "mine"),
			)
			s.AppendSelectExprAs(sql.Exists(sql.Select(members.C(membership.FieldID)).From(members).
				Where(sql.ColumnsEQ(members.C(membership.FieldChatID), s.C(chat.FieldID)))), "members")
		}).
		Scan(allowed(ctx), &rows)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return privacy.Denyf("no such chat")
	}
	c := rows[0]
	if chat.Kind(c.Kind) == chat.KindDirect {
		a, b, _ := ParseDirectKey(c.DirectKey.String)
		if userID != a && userID != b {
			return privacy.Denyf("a direct chat has only its pair as members")
		}
		if userID == uid && role == membership.RoleOwner {
			// Either of the pair joins, or rejoins after leaving, their direct chat.
			return privacy.Allow
		}
	}
	mine := membership.Role(c.Mine.String)
	switch {
	case mine == membership.RoleOwner:
		return privacy.Allow
	case mine == membership.RoleAdmin && role != membership.RoleOwner:
		return privacy.Allow
	case !c.Members.Bool && c.CreatedBy == uid && userID == uid && role == membership.RoleOwner:
		// The creator becomes the first owner of the chat they created, and only
		// while it has no member: a creator who left cannot take it back.
		return privacy.Allow
	}
	return privacy.Denyf("only a chat's owners and admins add members")
}

func messageMutationRule(ctx context.Context, m *gen.MessageMutation) error {
	uid := viewerID(ctx)
	switch {
	case m.Op().Is(ent.OpCreate):
		return messageCreateRule(ctx, m, uid)
	case m.Op().Is(ent.OpDelete | ent.OpDeleteOne):
		return privacy.Denyf("messages are soft-deleted; only the system deletes rows")
	}
	if !onlyTouches(m, message.FieldDeletedAt) {
		// Content, metadata, edited_at: the sender only.
		m.Where(message.SenderID(uid))
	}
	if touchesAny(m, message.FieldDeletedAt) {
		m.Where(func(s *sql.Selector) {
			s.Where(sql.Or(
				sql.EQ(s.C(message.FieldSenderID), uid),
				sql.In(s.C(message.FieldChatID), chatsOf(uid, membership.RoleOwner, membership.RoleAdmin)),
			))
		})
	}
	return privacy.Allow
}

// messageCreateRule decides who may append a message. It costs one query: the
// viewer's membership joined with the chat and the viewer's user row.
func messageCreateRule(ctx context.Context, m *gen.MessageMutation, uid uuid.UUID) error {
	chatID, _ := m.ChatID()
	sender, hasSender := m.SenderID()
	role, _ := m.Role()
	chatPreds := []predicate.Chat{chat.DeletedAtIsNil(), chat.ArchivedAtIsNil()}
	switch role {
	case message.RoleUser:
		if !hasSender || sender != uid {
			return privacy.Denyf("a user message is sent by the viewer")
		}
	case message.RoleAssistant, message.RoleTool:
		if hasSender {
			return privacy.Denyf("assistant and tool messages have no sender")
		}
		chatPreds = append(chatPreds, chat.KindEQ(chat.KindAssistant))
	default:
		return privacy.Denyf("only the system appends %s messages", role)
	}
	ok, err := m.Client().Membership.Query().
		Where(
			membership.ChatID(chatID),
			membership.UserID(uid),
			membership.HasChatWith(chatPreds...),
			membership.HasUserWith(user.DeletedAtIsNil(), user.StatusEQ(user.StatusActive)),
		).
		Exist(allowed(ctx))
	if err != nil {
		return err
	}
	if !ok {
		return privacy.Denyf("the viewer cannot append to this chat")
	}
	return privacy.Allow
}

// redactPasswordHash blanks User.PasswordHash in what every query returns unless
// the viewer is the system: applications check passwords at sign-in, before
// anyone is signed in, with viewer.SystemContext.
var redactPasswordHash = ent.InterceptFunc(func(next ent.Querier) ent.Querier {
	return ent.QuerierFunc(func(ctx context.Context, q ent.Query) (ent.Value, error) {
		v, err := next.Query(ctx, q)
		if err != nil {
			return v, err
		}
		if vw, _ := viewer.FromContext(ctx); vw.IsSystem() {
			return v, nil
		}
		switch v := v.(type) {
		case []*gen.User:
			for _, u := range v {
				u.PasswordHash = ""
			}
		case *gen.User:
			v.PasswordHash = ""
		}
		return v, nil
	})
})

// DirectKey returns the direct_key of the direct chat between users a and b: both
// IDs in ascending order, separated by a colon. It is the same whichever of the
// two asks, so the unique index on it allows one direct chat per pair.
func DirectKey(a, b uuid.UUID) string {
	if strings.Compare(a.String(), b.String()) > 0 {
		a, b = b, a
	}
	return a.String() + ":" + b.String()
}

// ParseDirectKey returns the two user IDs of a direct_key, and false when key is
// not one DirectKey makes.
func ParseDirectKey(key string) (a, b uuid.UUID, ok bool) {
	sa, sb, found := strings.Cut(key, ":")
	if !found {
		return uuid.Nil, uuid.Nil, false
	}
	a, errA := uuid.Parse(sa)
	b, errB := uuid.Parse(sb)
	if errA != nil || errB != nil || DirectKey(a, b) != key {
		return uuid.Nil, uuid.Nil, false
	}
	return a, b, true
}
