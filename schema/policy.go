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
	"github.com/chatdb/chatdb/ent/credential"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/rule"
	"github.com/chatdb/chatdb/viewer"
)

// Privacy policies. Every query and mutation through the ent client, the store's
// or a raw one, is decided here from the viewer in its context (package viewer):
//
//   - No viewer: denied. Code that forgets to say who acts fails closed.
//   - The system viewer: allowed everything.
//   - A user: what package rule says, with these write rules on top:
//     users: no creates or hard deletes; a live user updates their own row, not
//     its status, and may set but never clear its deleted_at (after which they
//     can do nothing at all).
//     credentials: read by nobody but the system; a live user writes their own.
//     chats: an active user creates chats they are the creator of (a direct
//     chat only with a direct_key that names them); as owner or admin,
//     changes the title and archives; as
//     owner, soft-deletes. Nobody but the system clears deleted_at or
//     hard-deletes, or writes the sequence and activity (last_seq,
//     last_message_at, large), which appends keep (schema's sequence hook).
//     memberships: an active user creates the founding owner membership of a
//     chat they created that has no members yet, joins a direct chat that names
//     them (as owner: both of a pair own their chat), and as owner or admin adds
//     other live users (only owners add owners; in a direct chat only the pair);
//     a member updates their own read position and muted flag; roles change as
//     owner, or as admin where neither the old nor the new role is owner, and
//     never in a direct chat; members remove themselves, others as owner or
//     admin, owners as owner only.
//     messages: an active member appends to a live, unarchived chat, as the
//     sender of user messages, or without a sender as assistant and tool
//     messages in an assistant chat (system messages are for the system
//     viewer); the sender, while an active member, edits content and metadata
//     of their live message; the sender while a member, or the chat's owners and
//     admins, soft-delete a live message, which erases its content (hooks.go);
//     nobody but the system clears deleted_at or hard-deletes.
//
// Filters are added to the statement itself (a WHERE clause), not checked by an
// extra query, wherever the rule can be written so: reads, updates and deletes.
// An update or delete a filter excludes affects no row, which ent reports as not
// found. Creates cannot be filtered and cost one extra query.

// Policy of the User.
func (User) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.UserQueryRuleFunc(func(ctx context.Context, q *gen.UserQuery) error {
				q.Where(func(s *sql.Selector) { s.Where(rule.CanReadUser(rule.Of(s), viewerID(ctx))) })
				return privacy.Allow
			}),
		},
		Mutation: privacy.MutationPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.UserMutationRuleFunc(userMutationRule),
		},
	}
}

// Policy of the Credential.
func (Credential) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.AlwaysDenyRule(),
		},
		Mutation: privacy.MutationPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.CredentialMutationRuleFunc(credentialMutationRule),
		},
	}
}

// Policy of the Chat.
func (Chat) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			denyWithoutViewer(),
			allowSystem(),
			privacy.ChatQueryRuleFunc(func(ctx context.Context, q *gen.ChatQuery) error {
				q.Where(func(s *sql.Selector) { s.Where(rule.CanReadChat(rule.Of(s), viewerID(ctx))) })
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
				q.Where(func(s *sql.Selector) { s.Where(rule.CanReadMembership(rule.Of(s), viewerID(ctx))) })
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
				q.Where(func(s *sql.Selector) { s.Where(rule.CanReadMessage(rule.Of(s), viewerID(ctx))) })
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

// where adds p, built for the mutation's table, to the mutation's WHERE clause.
func where(m interface{ WhereP(...func(*sql.Selector)) }, p func(r rule.Row) *sql.Predicate) {
	m.WhereP(func(s *sql.Selector) { s.Where(p(rule.Of(s))) })
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

// holds runs p as a query of its own and reports whether it is true: for the
// rules of creates, which have no row to filter.
func holds(ctx context.Context, c *gen.Client, p *sql.Predicate) (bool, error) {
	return c.User.Query().Where(func(s *sql.Selector) { s.Where(p) }).Exist(allowed(ctx))
}

func userMutationRule(ctx context.Context, m *gen.UserMutation) error {
	switch {
	case m.Op().Is(ent.OpCreate):
		return privacy.Denyf("only the system creates users")
	case m.Op().Is(ent.OpDelete | ent.OpDeleteOne):
		return privacy.Denyf("users are soft-deleted; only the system deletes rows")
	case touchesAny(m, user.FieldStatus):
		return privacy.Denyf("only the system changes a user's status")
	case m.DeletedAtCleared():
		return privacy.Denyf("only the system restores a deleted user")
	}
	// A live user writes their own row only; for others the update matches no row.
	m.Where(user.ID(viewerID(ctx)), user.DeletedAtIsNil())
	return privacy.Allow
}

func credentialMutationRule(ctx context.Context, m *gen.CredentialMutation) error {
	uid := viewerID(ctx)
	if m.Op().Is(ent.OpCreate) {
		if id, _ := m.UserID(); id != uid {
			return privacy.Denyf("a user writes only their own credential")
		}
		ok, err := holds(ctx, m.Client(), rule.Live(uid))
		if err != nil {
			return err
		}
		if !ok {
			return privacy.Denyf("a deleted user writes nothing")
		}
		return privacy.Allow
	}
	m.Where(credential.UserID(uid), func(s *sql.Selector) { s.Where(rule.Live(uid)) })
	return privacy.Allow
}

func chatMutationRule(ctx context.Context, m *gen.ChatMutation) error {
	uid := viewerID(ctx)
	switch {
	case m.Op().Is(ent.OpCreate):
		return chatCreateRule(ctx, m, uid)
	case m.Op().Is(ent.OpDelete | ent.OpDeleteOne):
		return privacy.Denyf("chats are soft-deleted; only the system deletes rows")
	case m.DeletedAtCleared():
		return privacy.Denyf("only the system restores a deleted chat")
	}
	if touchesAny(m, chat.FieldLastMessageAt, chat.FieldLastSeq, chat.FieldLarge) {
		// The chat's sequence and activity are the append's (schema's sequence
		// hook, the store's statements), which write them as the system.
		return privacy.Denyf("a chat's sequence and activity are the store's")
	}
	var roles []membership.Role
	switch {
	case touchesAny(m, chat.FieldDeletedAt):
		roles = []membership.Role{membership.RoleOwner}
	default:
		roles = []membership.Role{membership.RoleOwner, membership.RoleAdmin}
	}
	where(m, func(r rule.Row) *sql.Predicate {
		return sql.And(rule.Member(r(chat.FieldID), uid, roles...), rule.Active(uid))
	})
	return privacy.Allow
}

// chatCreateRule decides who may create a chat. It costs one query: is the
// creator active.
func chatCreateRule(ctx context.Context, m *gen.ChatMutation, uid uuid.UUID) error {
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
	ok, err := holds(ctx, m.Client(), rule.Active(uid))
	if err != nil {
		return err
	}
	if !ok {
		return privacy.Denyf("deleted and suspended users create no chats")
	}
	return privacy.Allow
}

func membershipMutationRule(ctx context.Context, m *gen.MembershipMutation) error {
	uid := viewerID(ctx)
	switch {
	case m.Op().Is(ent.OpCreate):
		return membershipCreateRule(ctx, m, uid)
	case m.Op().Is(ent.OpDelete | ent.OpDeleteOne):
		// Yourself; anyone but an owner as owner or admin; an owner as owner.
		where(m, func(r rule.Row) *sql.Predicate {
			c := r(membership.FieldChatID)
			return sql.Or(
				sql.And(rule.Own(r, uid), rule.Member(c, uid)),
				rule.Member(c, uid, membership.RoleOwner),
				sql.And(rule.NotOwner(r), rule.Member(c, uid, membership.RoleAdmin)),
			)
		})
		return privacy.Allow
	}
	if touchesAny(m, membership.FieldChatLastMessageAt, membership.FieldLarge) {
		return privacy.Denyf("a membership's inbox order is the store's")
	}
	if touchesAny(m, membership.FieldRole) {
		r, ok := m.Role()
		ownerInvolved := !ok || r == membership.RoleOwner
		where(m, func(r rule.Row) *sql.Predicate {
			c := r(membership.FieldChatID)
			byOwner := rule.Member(c, uid, membership.RoleOwner)
			if !ownerInvolved {
				byOwner = sql.Or(byOwner, sql.And(rule.NotOwner(r), rule.Member(c, uid, membership.RoleAdmin)))
			}
			return sql.And(byOwner, sql.Not(rule.Direct(c)), rule.Active(uid))
		})
	}
	if !onlyTouches(m, membership.FieldRole) {
		// Read position and muted: a member's own membership only.
		where(m, func(r rule.Row) *sql.Predicate {
			return rule.CanUpdateOwnMembership(r, uid)
		})
	}
	return privacy.Allow
}

// membershipCreateRule decides who may add a member. It costs one query: the
// chat, with the viewer's role in it, whether it has any member, whether the
// viewer is active and the new member live.
func membershipCreateRule(ctx context.Context, m *gen.MembershipMutation, uid uuid.UUID) error {
	chatID, _ := m.ChatID()
	userID, _ := m.UserID()
	role, _ := m.Role()
	var rows []struct {
		Kind         string            `sql:"kind"`
		CreatedBy    uuid.UUID         `sql:"created_by"`
		DirectKey    stdsql.NullString `sql:"direct_key"`
		Mine         stdsql.NullString `sql:"mine"`
		Members      stdsql.NullBool   `sql:"members"`
		ViewerActive stdsql.NullBool   `sql:"viewer_active"`
		UserLive     stdsql.NullBool   `sql:"user_live"`
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
			s.AppendSelectExprAs(rule.Active(uid), "viewer_active")
			s.AppendSelectExprAs(rule.Live(userID), "user_live")
		}).
		Scan(allowed(ctx), &rows)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return privacy.Denyf("no such chat")
	}
	c := rows[0]
	switch {
	case !c.ViewerActive.Bool:
		return privacy.Denyf("deleted and suspended users add no members")
	case !c.UserLive.Bool:
		return privacy.Denyf("a deleted user joins no chat")
	}
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
	case m.DeletedAtCleared():
		return privacy.Denyf("only the system restores a deleted message")
	}
	// Only live messages change: a deleted one has nothing left to edit, and
	// stays deleted.
	m.Where(message.DeletedAtIsNil())
	if !onlyTouches(m, message.FieldDeletedAt) {
		// Content, metadata, edited_at: the sender, while an active member.
		where(m, func(r rule.Row) *sql.Predicate {
			return sql.And(rule.Sent(r, uid), rule.Member(r(message.FieldChatID), uid), rule.Active(uid))
		})
	}
	if touchesAny(m, message.FieldDeletedAt) {
		// Deleting: the sender while a member, or the chat's owners and admins.
		where(m, func(r rule.Row) *sql.Predicate {
			c := r(message.FieldChatID)
			return sql.Or(
				sql.And(rule.Sent(r, uid), rule.Member(c, uid)),
				rule.Member(c, uid, membership.RoleOwner, membership.RoleAdmin),
			)
		})
	}
	return privacy.Allow
}

// messageCreateRule decides who may append a message. It costs one query: the
// chat under rule.MayAppend.
func messageCreateRule(ctx context.Context, m *gen.MessageMutation, uid uuid.UUID) error {
	chatID, _ := m.ChatID()
	sender, hasSender := m.SenderID()
	role, _ := m.Role()
	assistantOnly, err := AppendRole(role, sender, hasSender, uid)
	if err != nil {
		return err
	}
	ok, err := m.Client().Chat.Query().
		Where(chat.ID(chatID), func(s *sql.Selector) { s.Where(rule.MayAppend(rule.Of(s), uid, assistantOnly)) }).
		Exist(allowed(ctx))
	if err != nil {
		return err
	}
	if !ok {
		return privacy.Denyf("the viewer cannot append to this chat")
	}
	return privacy.Allow
}

// AppendRole is the part of the append rule that depends on the message alone:
// whether user viewer uid may write a message of role from sender (hasSender
// false: none), and, when it may, whether only an assistant chat takes it. It
// returns a privacy denial otherwise. rule.MayAppend decides the rest.
func AppendRole(role message.Role, sender uuid.UUID, hasSender bool, uid uuid.UUID) (assistantOnly bool, err error) {
	switch role {
	case message.RoleUser:
		if !hasSender || sender != uid {
			return false, privacy.Denyf("a user message is sent by the viewer")
		}
		return false, nil
	case message.RoleAssistant, message.RoleTool:
		if hasSender {
			return false, privacy.Denyf("assistant and tool messages have no sender")
		}
		return true, nil
	default:
		return false, privacy.Denyf("only the system appends %s messages", role)
	}
}

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
