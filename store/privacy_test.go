package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/credential"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/store"
)

// world is the cast of the privacy tests: a group chat with an owner, an admin
// and a member, an outsider, and a message from the member.
type world struct {
	*env
	client                    *ent.Client
	owner, admin, member, eve *store.User
	group                     *store.Chat
	memberMsg                 *store.Message
}

func newWorld(t *testing.T, target dbtest.Target, opts ...store.Option) *world {
	t.Helper()
	e := newEnv(t, target, opts...)
	w := &world{env: e, client: e.db.Client()}
	w.owner, w.admin, w.member, w.eve = e.user("owner"), e.user("admin"), e.user("member"), e.user("eve")
	w.group = e.group(w.owner, w.admin, w.member)
	_, err := e.s.SetRole(e.as(w.owner), w.group.ID, w.admin.ID, membership.RoleAdmin)
	require.NoError(t, err)
	w.memberMsg = e.say(w.member, w.group, "from the member")
	return w
}

// fresh returns a new group chat with the world's roles, for rules that change it.
func (w *world) fresh() *store.Chat {
	w.t.Helper()
	c := w.env.group(w.owner, w.admin, w.member)
	_, err := w.s.SetRole(w.as(w.owner), c.ID, w.admin.ID, membership.RoleAdmin)
	require.NoError(w.t, err)
	return c
}

func requireDenied(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, privacy.Deny)
}

// requireNoRow checks an update or delete that the policy's filter left with no
// row to change.
//
//	requireNoRow(t)(client.Message.Update()...Save(ctx))
func requireNoRow(t *testing.T) func(n int, err error) {
	t.Helper()
	return func(n int, err error) {
		t.Helper()
		require.NoError(t, err)
		require.Zero(t, n)
	}
}

// TestPrivacy checks every rule of package rule and schema/policy.go through
// the raw ent client with a viewer in the context, and through the store on
// both of its backends, which must answer alike.
func TestPrivacy(t *testing.T) {
	t.Parallel()
	rules := []struct {
		name  string
		raw   func(t *testing.T, w *world)
		store func(t *testing.T, w *world)
	}{
		{
			name: "no viewer is denied everything",
			raw: func(t *testing.T, w *world) {
				ctx := t.Context()
				_, err := w.client.User.Query().All(ctx)
				requireDenied(t, err)
				_, err = w.client.Chat.Query().All(ctx)
				requireDenied(t, err)
				_, err = w.client.Membership.Query().All(ctx)
				requireDenied(t, err)
				_, err = w.client.Message.Query().All(ctx)
				requireDenied(t, err)
				_, err = w.client.User.Create().SetEmail("x@example.com").SetDisplayName("X").Save(ctx)
				requireDenied(t, err)
				_, err = w.client.Message.Update().SetContent("x").Save(ctx)
				requireDenied(t, err)
			},
			store: func(t *testing.T, w *world) {
				ctx := t.Context()
				_, err := w.s.GetUser(ctx, w.owner.ID)
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.History(ctx, w.group.ID, store.HistoryQuery{})
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.AppendMessage(ctx, store.NewMessage{ChatID: w.group.ID, Content: "x"})
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.Inbox(ctx, store.InboxQuery{})
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.CreateUser(ctx, store.NewUser{Email: "x@example.com", DisplayName: "X"})
				requireKind(t, err, store.ErrForbidden)
			},
		},
		{
			name: "the system is allowed everything",
			raw: func(t *testing.T, w *world) {
				ctx := w.sys()
				n, err := w.client.Chat.Query().Count(ctx)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				u, err := w.client.User.Query().Where(user.ID(w.owner.ID)).Only(ctx)
				require.NoError(t, err)
				require.Equal(t, w.owner.ID, u.ID)
				_, err = w.client.Message.UpdateOneID(w.memberMsg.ID).SetContent("moderated").Save(ctx)
				require.NoError(t, err)
			},
			store: func(t *testing.T, w *world) {
				page, err := w.s.History(w.sys(), w.group.ID, store.HistoryQuery{})
				require.NoError(t, err)
				require.Len(t, page.Messages, 1)
				_, err = w.s.CreateUser(w.sys(), store.NewUser{Email: "new@example.com", DisplayName: "New"})
				require.NoError(t, err)
			},
		},
		{
			name: "only the system creates or hard-deletes users",
			raw: func(t *testing.T, w *world) {
				_, err := w.client.User.Create().SetEmail("y@example.com").SetDisplayName("Y").Save(w.as(w.eve))
				requireDenied(t, err)
				err = w.client.User.DeleteOneID(w.eve.ID).Exec(w.as(w.eve))
				requireDenied(t, err)
			},
			store: func(t *testing.T, w *world) {
				_, err := w.s.CreateUser(w.as(w.eve), store.NewUser{Email: "y@example.com", DisplayName: "Y"})
				requireKind(t, err, store.ErrForbidden)
			},
		},
		{
			name: "a user reads every live profile but no password hash",
			raw: func(t *testing.T, w *world) {
				const hash = "secret-hash"
				_, err := w.client.Credential.Create().SetUserID(w.owner.ID).SetPasswordHash(hash).Save(w.sys())
				require.NoError(t, err)
				all, err := w.client.User.Query().All(w.as(w.eve))
				require.NoError(t, err)
				require.Len(t, all, 4, "eve shares no chat but finds everyone")
				// The hash is in no column of users, and credentials answer no
				// user's query, by selection, predicate or aggregate, not even
				// its owner's.
				require.NotContains(t, user.Columns, "password_hash")
				for _, as := range []*store.User{w.eve, w.owner} {
					ctx := w.as(as)
					_, err = w.client.Credential.Query().Select(credential.FieldPasswordHash).Strings(ctx)
					requireDenied(t, err)
					var v []struct {
						Hash string `json:"password_hash"`
					}
					requireDenied(t, w.client.Credential.Query().Select(credential.FieldPasswordHash).Scan(ctx, &v))
					_, err = w.client.Credential.Query().Where(credential.PasswordHashHasPrefix("s")).Exist(ctx)
					requireDenied(t, err)
					_, err = w.client.Credential.Query().Count(ctx)
					requireDenied(t, err)
				}
				got, err := w.client.Credential.Query().Where(credential.UserID(w.owner.ID)).Only(w.sys())
				require.NoError(t, err)
				require.Equal(t, hash, got.PasswordHash)
				// A user writes their own credential (a password change), and
				// nobody else's.
				_, err = w.client.Credential.Create().SetUserID(w.owner.ID).SetPasswordHash("x").Save(w.as(w.eve))
				requireDenied(t, err)
				requireNoRow(t)(w.client.Credential.Update().Where(credential.UserID(w.owner.ID)).SetPasswordHash("x").Save(w.as(w.eve)))
				n, err := w.client.Credential.Update().Where(credential.UserID(w.owner.ID)).SetPasswordHash("new").Save(w.as(w.owner))
				require.NoError(t, err)
				require.Equal(t, 1, n)
			},
			store: func(t *testing.T, w *world) {
				hash := "secret-hash"
				_, err := w.s.UpdateProfile(w.sys(), w.owner.ID, store.ProfileUpdate{PasswordHash: &hash})
				require.NoError(t, err)
				u, err := w.s.UserByEmail(w.as(w.eve), w.owner.Email)
				require.NoError(t, err)
				require.Equal(t, w.owner.ID, u.ID)
				_, err = w.s.PasswordHash(w.as(w.eve), w.owner.ID)
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.PasswordHash(w.as(w.owner), w.owner.ID)
				requireKind(t, err, store.ErrForbidden)
				// A password change by the user, read back by the system.
				changed := "changed-hash"
				_, err = w.s.UpdateProfile(w.as(w.owner), w.owner.ID, store.ProfileUpdate{PasswordHash: &changed})
				require.NoError(t, err)
				got, err := w.s.PasswordHash(w.sys(), w.owner.ID)
				require.NoError(t, err)
				require.Equal(t, changed, got)
				// A deleted user has no hash to sign in with.
				require.NoError(t, w.s.DeleteUser(w.as(w.owner), w.owner.ID))
				_, err = w.s.PasswordHash(w.sys(), w.owner.ID)
				requireKind(t, err, database.ErrNotFound)
			},
		},
		{
			name: "a user writes only their own profile, and not its status",
			raw: func(t *testing.T, w *world) {
				_, err := w.client.User.UpdateOneID(w.eve.ID).SetDisplayName("Eve 2").Save(w.as(w.eve))
				require.NoError(t, err)
				_, err = w.client.User.UpdateOneID(w.owner.ID).SetDisplayName("Pwned").Save(w.as(w.eve))
				require.True(t, ent.IsNotFound(err), "%v", err)
				n, err := w.client.User.Update().SetDisplayName("Pwned").Save(w.as(w.eve))
				require.NoError(t, err)
				require.Equal(t, 1, n, "a bulk update reaches the viewer's row only")
				_, err = w.client.User.UpdateOneID(w.eve.ID).SetStatus(user.StatusSuspended).Save(w.as(w.eve))
				requireDenied(t, err)
				got, err := w.client.User.Get(w.sys(), w.owner.ID)
				require.NoError(t, err)
				require.Equal(t, "owner", got.DisplayName)
			},
			store: func(t *testing.T, w *world) {
				name := "Pwned"
				_, err := w.s.UpdateProfile(w.as(w.eve), w.owner.ID, store.ProfileUpdate{DisplayName: &name})
				requireKind(t, err, store.ErrForbidden)
				requireKind(t, w.s.DeleteUser(w.as(w.eve), w.owner.ID), store.ErrForbidden)
			},
		},
		{
			name: "a user reads only chats, memberships and messages of their chats",
			raw: func(t *testing.T, w *world) {
				for _, u := range []*store.User{w.eve, w.member} {
					ctx := w.as(u)
					want := 0
					if u == w.member {
						want = 1
					}
					chats, err := w.client.Chat.Query().All(ctx)
					require.NoError(t, err)
					require.Len(t, chats, want)
					ms, err := w.client.Membership.Query().All(ctx)
					require.NoError(t, err)
					require.Len(t, ms, 3*want)
					msgs, err := w.client.Message.Query().All(ctx)
					require.NoError(t, err)
					require.Len(t, msgs, want)
				}
				_, err := w.client.Chat.Get(w.as(w.eve), w.group.ID)
				require.True(t, ent.IsNotFound(err))
				_, err = w.client.Message.Get(w.as(w.eve), w.memberMsg.ID)
				require.True(t, ent.IsNotFound(err))
				// Through an edge too.
				sender, err := w.client.Message.Query().Where(message.ID(w.memberMsg.ID)).QueryChat().All(w.as(w.eve))
				require.NoError(t, err)
				require.Empty(t, sender)
			},
			store: func(t *testing.T, w *world) {
				_, err := w.s.GetChat(w.as(w.eve), w.group.ID)
				requireKind(t, err, database.ErrNotFound)
				_, err = w.s.Members(w.as(w.eve), w.group.ID)
				requireKind(t, err, database.ErrNotFound)
				_, err = w.s.History(w.as(w.eve), w.group.ID, store.HistoryQuery{})
				requireKind(t, err, database.ErrNotFound)
				inbox, err := w.s.Inbox(w.as(w.eve), store.InboxQuery{})
				require.NoError(t, err)
				require.Empty(t, inbox)
			},
		},
		{
			name: "a signed-in user creates chats as their creator",
			raw: func(t *testing.T, w *world) {
				ctx := w.as(w.eve)
				_, err := w.client.Chat.Create().SetKind(chat.KindGroup).SetCreatedBy(w.eve.ID).Save(ctx)
				require.NoError(t, err)
				_, err = w.client.Chat.Create().SetKind(chat.KindGroup).SetCreatedBy(w.owner.ID).Save(ctx)
				requireDenied(t, err)
				// A direct chat's key must name its creator: nobody blocks a pair
				// by taking their key.
				_, err = w.client.Chat.Create().SetKind(chat.KindDirect).SetCreatedBy(w.eve.ID).
					SetDirectKey(schema.DirectKey(w.owner.ID, w.member.ID)).Save(ctx)
				requireDenied(t, err)
				_, err = w.client.Chat.Create().SetKind(chat.KindDirect).SetCreatedBy(w.eve.ID).SetDirectKey("junk").Save(ctx)
				requireDenied(t, err)
				_, err = w.client.Chat.Create().SetKind(chat.KindGroup).SetCreatedBy(w.eve.ID).
					SetDirectKey(schema.DirectKey(w.eve.ID, w.member.ID)).Save(ctx)
				requireDenied(t, err)
			},
			store: func(t *testing.T, w *world) {
				_, err := w.s.CreateGroupChat(w.as(w.eve), "mine", nil)
				require.NoError(t, err)
				_, err = w.s.CreateAssistantChat(w.sys(), "the system is no user")
				requireKind(t, err, store.ErrForbidden)
			},
		},
		{
			name: "only appends move a chat's sequence; owners and admins change the rest; owners delete",
			raw: func(t *testing.T, w *world) {
				c := w.fresh()
				for _, as := range []*store.User{w.member, w.owner, w.eve} {
					_, err := w.client.Chat.Update().Where(chat.ID(c.ID)).SetLastMessageAt(schema.Now()).Save(w.as(as))
					requireDenied(t, err)
					_, err = w.client.Chat.Update().Where(chat.ID(c.ID)).SetLastSeq(100).Save(w.as(as))
					requireDenied(t, err)
					_, err = w.client.Chat.Update().Where(chat.ID(c.ID)).SetLarge(true).Save(w.as(as))
					requireDenied(t, err)
				}
				requireNoRow(t)(w.client.Chat.Update().Where(chat.ID(c.ID)).SetTitle("member's").Save(w.as(w.member)))
				n, err := w.client.Chat.Update().Where(chat.ID(c.ID)).SetTitle("admin's").Save(w.as(w.admin))
				require.NoError(t, err)
				require.Equal(t, 1, n)
				requireNoRow(t)(w.client.Chat.Update().Where(chat.ID(c.ID)).SetDeletedAt(schema.Now()).Save(w.as(w.admin)))
				n, err = w.client.Chat.Update().Where(chat.ID(c.ID)).SetDeletedAt(schema.Now()).Save(w.as(w.owner))
				require.NoError(t, err)
				require.Equal(t, 1, n)
				requireDenied(t, w.client.Chat.DeleteOneID(c.ID).Exec(w.as(w.owner)))
			},
			store: func(t *testing.T, w *world) {
				c := w.fresh()
				_, err := w.s.ArchiveChat(w.as(w.member), c.ID)
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.ArchiveChat(w.as(w.admin), c.ID)
				require.NoError(t, err)
			},
		},
		{
			name: "the creator founds a chat's membership once; owners and admins add members",
			raw: func(t *testing.T, w *world) {
				ctx := w.as(w.eve)
				c, err := w.client.Chat.Create().SetKind(chat.KindGroup).SetCreatedBy(w.eve.ID).Save(ctx)
				require.NoError(t, err)
				_, err = w.client.Membership.Create().SetChatID(c.ID).SetUserID(w.eve.ID).SetRole(membership.RoleAdmin).Save(ctx)
				requireDenied(t, err) // the founder is its owner
				mine, err := w.client.Membership.Create().SetChatID(c.ID).SetUserID(w.eve.ID).SetRole(membership.RoleOwner).Save(ctx)
				require.NoError(t, err)
				_, err = w.client.Membership.Create().SetChatID(c.ID).SetUserID(w.member.ID).Save(ctx)
				require.NoError(t, err)
				// A creator who left does not take the chat back.
				require.NoError(t, w.client.Membership.DeleteOne(mine).Exec(ctx))
				_, err = w.client.Membership.Create().SetChatID(c.ID).SetUserID(w.eve.ID).SetRole(membership.RoleOwner).Save(ctx)
				requireDenied(t, err)

				// In the world's group: members add nobody, admins add members but
				// not owners, outsiders nothing.
				add := func(as *store.User, role membership.Role) error {
					_, err := w.client.Membership.Create().SetChatID(w.group.ID).SetUserID(w.eve.ID).SetRole(role).Save(w.as(as))
					return err
				}
				requireDenied(t, add(w.member, membership.RoleMember))
				requireDenied(t, add(w.eve, membership.RoleMember))
				requireDenied(t, add(w.admin, membership.RoleOwner))
				require.NoError(t, add(w.admin, membership.RoleMember))
			},
			store: func(t *testing.T, w *world) {
				c := w.fresh()
				_, err := w.s.AddMember(w.as(w.member), c.ID, w.eve.ID, membership.RoleMember)
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.AddMember(w.as(w.admin), c.ID, w.eve.ID, membership.RoleOwner)
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.AddMember(w.as(w.admin), c.ID, w.eve.ID, membership.RoleMember)
				require.NoError(t, err)
			},
		},
		{
			name: "a direct chat has only its pair",
			raw: func(t *testing.T, w *world) {
				d := w.direct(w.owner, w.member)
				_, err := w.client.Membership.Create().SetChatID(d.ID).SetUserID(w.eve.ID).Save(w.as(w.owner))
				requireDenied(t, err)
				_, err = w.client.Membership.Create().SetChatID(d.ID).SetUserID(w.eve.ID).SetRole(membership.RoleOwner).Save(w.as(w.eve))
				requireDenied(t, err)
			},
			store: func(t *testing.T, w *world) {
				d, _, err := w.s.CreateDirectChat(w.as(w.owner), w.member.ID)
				require.NoError(t, err)
				_, err = w.s.AddMember(w.as(w.owner), d.ID, w.eve.ID, membership.RoleMember)
				requireKind(t, err, store.ErrForbidden)
			},
		},
		{
			name: "a member changes only their own read position and muted flag",
			raw: func(t *testing.T, w *world) {
				n, err := w.client.Membership.Update().Where(membership.ChatID(w.group.ID)).SetMuted(true).Save(w.as(w.member))
				require.NoError(t, err)
				require.Equal(t, 1, n, "the member's own row only")
				requireNoRow(t)(w.client.Membership.Update().
					Where(membership.ChatID(w.group.ID), membership.UserID(w.admin.ID)).SetMuted(true).Save(w.as(w.owner)))
			},
			store: func(t *testing.T, w *world) {
				require.NoError(t, w.s.MarkRead(w.as(w.member), w.group.ID, w.memberMsg.ID))
				ms, err := w.s.Members(w.as(w.member), w.group.ID)
				require.NoError(t, err)
				for _, m := range ms {
					if m.UserID == w.member.ID {
						require.Equal(t, w.memberMsg.ID, *m.LastReadMessageID)
					} else {
						require.Nil(t, m.LastReadMessageID)
					}
				}
			},
		},
		{
			name: "owners change roles; admins only between member and admin",
			raw: func(t *testing.T, w *world) {
				c := w.fresh()
				set := func(as, who *store.User, role membership.Role) (int, error) {
					return w.client.Membership.Update().
						Where(membership.ChatID(c.ID), membership.UserID(who.ID)).SetRole(role).Save(w.as(as))
				}
				requireNoRow(t)(set(w.member, w.member, membership.RoleAdmin))
				requireNoRow(t)(set(w.admin, w.member, membership.RoleOwner))
				requireNoRow(t)(set(w.admin, w.owner, membership.RoleMember))
				n, err := set(w.admin, w.member, membership.RoleAdmin)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				n, err = set(w.owner, w.admin, membership.RoleOwner)
				require.NoError(t, err)
				require.Equal(t, 1, n)
			},
			store: func(t *testing.T, w *world) {
				c := w.fresh()
				_, err := w.s.SetRole(w.as(w.admin), c.ID, w.member.ID, membership.RoleOwner)
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.SetRole(w.as(w.owner), c.ID, w.member.ID, membership.RoleOwner)
				require.NoError(t, err)
			},
		},
		{
			name: "members remove themselves; owners and admins others; owners owners",
			raw: func(t *testing.T, w *world) {
				c := w.fresh()
				del := func(as, who *store.User) (int, error) {
					return w.client.Membership.Delete().
						Where(membership.ChatID(c.ID), membership.UserID(who.ID)).Exec(w.as(as))
				}
				requireNoRow(t)(del(w.member, w.admin))
				requireNoRow(t)(del(w.admin, w.owner))
				requireNoRow(t)(del(w.eve, w.member))
				n, err := del(w.admin, w.member)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				n, err = del(w.admin, w.admin)
				require.NoError(t, err)
				require.Equal(t, 1, n)
			},
			store: func(t *testing.T, w *world) {
				c := w.fresh()
				requireKind(t, w.s.RemoveMember(w.as(w.member), c.ID, w.admin.ID), store.ErrForbidden)
				requireKind(t, w.s.RemoveMember(w.as(w.admin), c.ID, w.owner.ID), store.ErrForbidden)
				require.NoError(t, w.s.RemoveMember(w.as(w.owner), c.ID, w.admin.ID))
				require.NoError(t, w.s.RemoveMember(w.as(w.member), c.ID, w.member.ID))
			},
		},
		{
			name: "a member appends as themselves to a live chat",
			raw: func(t *testing.T, w *world) {
				create := func(as *store.User, c *store.Chat, role message.Role, sender *store.User) error {
					return w.db.WithTxContext(w.as(as), func(ctx context.Context, tx *ent.Tx) error {
						mc := tx.Message.Create().SetChatID(c.ID).SetRole(role).SetContent("x")
						if sender != nil {
							mc.SetSenderID(sender.ID)
						}
						_, err := mc.Save(ctx)
						return err
					})
				}
				// A message takes its seq in a transaction.
				_, err := w.client.Message.Create().SetChatID(w.group.ID).SetRole(message.RoleUser).
					SetSenderID(w.member.ID).SetContent("x").Save(w.as(w.member))
				require.ErrorIs(t, err, schema.ErrNotInTx)
				require.NoError(t, create(w.member, w.group, message.RoleUser, w.member))
				requireDenied(t, create(w.member, w.group, message.RoleUser, w.admin))
				requireDenied(t, create(w.member, w.group, message.RoleUser, nil))
				requireDenied(t, create(w.eve, w.group, message.RoleUser, w.eve))
				requireDenied(t, create(w.member, w.group, message.RoleSystem, nil))
				requireDenied(t, create(w.member, w.group, message.RoleAssistant, nil))

				a, err := w.s.CreateAssistantChat(w.as(w.member), "ask")
				require.NoError(t, err)
				require.NoError(t, create(w.member, a, message.RoleAssistant, nil))
				require.NoError(t, create(w.member, a, message.RoleTool, nil))
				requireDenied(t, create(w.member, a, message.RoleAssistant, w.member))

				c := w.fresh()
				_, err = w.s.ArchiveChat(w.as(w.owner), c.ID)
				require.NoError(t, err)
				requireDenied(t, create(w.member, c, message.RoleUser, w.member))
			},
			store: func(t *testing.T, w *world) {
				_, err := w.s.AppendMessage(w.as(w.eve), store.NewMessage{ChatID: w.group.ID, Content: "x"})
				requireKind(t, err, database.ErrNotFound)
				_, err = w.s.AppendMessage(w.as(w.member), store.NewMessage{ChatID: w.group.ID, Content: "x", SenderID: w.owner.ID})
				requireKind(t, err, store.ErrForbidden)
				_, err = w.s.AppendMessage(w.as(w.member), store.NewMessage{ChatID: w.group.ID, Content: "x"})
				require.NoError(t, err)
			},
		},
		{
			name: "deleted and suspended users cannot append",
			raw: func(t *testing.T, w *world) {
				for _, set := range []func(*ent.UserUpdateOne){
					func(u *ent.UserUpdateOne) { u.SetStatus(user.StatusSuspended) },
					func(u *ent.UserUpdateOne) { u.SetStatus(user.StatusActive).SetDeletedAt(schema.Now()) },
				} {
					up := w.client.User.UpdateOneID(w.member.ID)
					set(up)
					_, err := up.Save(w.sys())
					require.NoError(t, err)
					_, err = w.client.Message.Create().SetChatID(w.group.ID).SetRole(message.RoleUser).
						SetSenderID(w.member.ID).SetContent("x").Save(w.as(w.member))
					requireDenied(t, err)
				}
			},
			store: func(t *testing.T, w *world) {
				_, err := w.client.User.UpdateOneID(w.member.ID).SetStatus(user.StatusSuspended).Save(w.sys())
				require.NoError(t, err)
				_, err = w.s.AppendMessage(w.as(w.member), store.NewMessage{ChatID: w.group.ID, Content: "x"})
				requireKind(t, err, store.ErrForbidden)
			},
		},
		{
			name: "only the sender edits; the sender, owners and admins soft-delete",
			raw: func(t *testing.T, w *world) {
				edit := func(as *store.User) (int, error) {
					return w.client.Message.Update().Where(message.ID(w.memberMsg.ID)).SetContent("edited").Save(w.as(as))
				}
				requireNoRow(t)(edit(w.owner))
				requireNoRow(t)(edit(w.eve))
				n, err := edit(w.member)
				require.NoError(t, err)
				require.Equal(t, 1, n)

				other := w.say(w.admin, w.group, "admin's")
				del := func(as *store.User, m *store.Message) (int, error) {
					return w.client.Message.Update().Where(message.ID(m.ID)).SetDeletedAt(schema.Now()).Save(w.as(as))
				}
				requireNoRow(t)(del(w.member, other))
				// Deleting and editing at once is the sender's only.
				requireNoRow(t)(w.client.Message.Update().Where(message.ID(other.ID)).
					SetDeletedAt(schema.Now()).SetContent("x").Save(w.as(w.owner)))
				n, err = del(w.owner, other)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				n, err = del(w.member, w.memberMsg)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				requireDenied(t, w.client.Message.DeleteOneID(w.memberMsg.ID).Exec(w.as(w.owner)))
			},
			store: func(t *testing.T, w *world) {
				_, err := w.s.EditMessage(w.as(w.admin), w.memberMsg.ID, "edited")
				requireKind(t, err, store.ErrForbidden)
				other := w.say(w.owner, w.group, "owner's")
				requireKind(t, w.s.DeleteMessage(w.as(w.member), other.ID), store.ErrForbidden)
				require.NoError(t, w.s.DeleteMessage(w.as(w.admin), other.ID))
			},
		},
	}
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		for _, r := range rules {
			t.Run(r.name, func(t *testing.T) {
				t.Run("raw client", func(t *testing.T) { r.raw(t, newWorld(t, target)) })
				for _, b := range backends {
					t.Run("store on "+b.name, func(t *testing.T) { r.store(t, newWorld(t, target, b.opts...)) })
				}
			})
		}
	})
}
