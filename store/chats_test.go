package store_test

import (
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/store"
)

func TestCreateDirectChat(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c, created, err := e.s.CreateDirectChat(e.as(ada), bob.ID)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, chat.KindDirect, c.Kind)
		require.Equal(t, schema.DirectKey(ada.ID, bob.ID), *e.chat(c).DirectKey)

		again, created, err := e.s.CreateDirectChat(e.as(ada), bob.ID)
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, c.ID, again.ID)
		other, created, err := e.s.CreateDirectChat(e.as(bob), ada.ID)
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, c.ID, other.ID)

		ms, err := e.s.Members(e.as(bob), c.ID)
		require.NoError(t, err)
		require.Len(t, ms, 2)
		for _, m := range ms {
			require.Equal(t, membership.RoleOwner, m.Role, "both of a pair own their direct chat")
			require.Equal(t, m.UserID, m.User.ID)
		}

		_, _, err = e.s.CreateDirectChat(e.as(ada), ada.ID)
		requireKind(t, err, database.ErrInvalid)
		_, _, err = e.s.CreateDirectChat(e.as(ada), uuid.New())
		requireKind(t, err, database.ErrNotFound)
		_, _, err = e.s.CreateDirectChat(e.sys(), ada.ID)
		requireKind(t, err, store.ErrForbidden)
	})
}

// Leaving a direct chat and opening it again rejoins the same chat.
func TestCreateDirectChatRejoins(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		e.say(bob, c, "are you there?")
		require.NoError(t, e.s.RemoveMember(e.as(ada), c.ID, ada.ID))
		_, err := e.s.GetChat(e.as(ada), c.ID)
		requireKind(t, err, database.ErrNotFound)

		back, created, err := e.s.CreateDirectChat(e.as(ada), bob.ID)
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, c.ID, back.ID)
		require.Len(t, e.history(ada, c), 1)
	})
}

// Both sides open their direct chat at once, many times over: exactly one chat,
// and every caller gets it.
func TestCreateDirectChatRace(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		const n = 8
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			chats   [n]*store.Chat
			created [n]bool
			errs    [n]error
		)
		for i := range n {
			me, other := ada, bob
			if i%2 == 1 {
				me, other = bob, ada
			}
			wg.Go(func() {
				<-start
				chats[i], created[i], errs[i] = e.s.CreateDirectChat(e.as(me), other.ID)
			})
		}
		close(start)
		wg.Wait()
		nCreated := 0
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, chats[0].ID, chats[i].ID)
			if created[i] {
				nCreated++
			}
		}
		require.Equal(t, 1, nCreated)
		count, err := e.db.Client().Chat.Query().Where(chat.KindEQ(chat.KindDirect)).Count(e.sys())
		require.NoError(t, err)
		require.Equal(t, 1, count)
		members, err := e.db.Client().Membership.Query().Where(membership.ChatID(chats[0].ID)).Count(e.sys())
		require.NoError(t, err)
		require.Equal(t, 2, members)
	})
}

func TestCreateGroupChat(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		c, err := e.s.CreateGroupChat(e.as(ada), "Trip", []uuid.UUID{bob.ID, carol.ID, bob.ID, ada.ID})
		require.NoError(t, err)
		require.Equal(t, chat.KindGroup, c.Kind)
		require.Equal(t, "Trip", c.Title)
		require.Equal(t, ada.ID, c.CreatedBy)
		require.Nil(t, e.chat(c).DirectKey)

		ms, err := e.s.Members(e.as(carol), c.ID)
		require.NoError(t, err)
		roles := map[uuid.UUID]membership.Role{}
		for _, m := range ms {
			roles[m.UserID] = m.Role
		}
		require.Equal(t, map[uuid.UUID]membership.Role{
			ada.ID: membership.RoleOwner, bob.ID: membership.RoleMember, carol.ID: membership.RoleMember,
		}, roles)

		// An unknown member: nothing is created.
		_, err = e.s.CreateGroupChat(e.as(ada), "Bad", []uuid.UUID{bob.ID, uuid.New()})
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.CreateGroupChat(e.as(ada), "bad \x00 title", nil)
		requireKind(t, err, database.ErrInvalid)
		n, err := e.db.Client().Chat.Query().Count(e.sys())
		require.NoError(t, err)
		require.Equal(t, 1, n)

		_, err = e.s.CreateGroupChat(e.t.Context(), "No one", nil)
		requireKind(t, err, store.ErrForbidden)
	})
}

func TestCreateAssistantChat(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada := e.user("ada")
		c, err := e.s.CreateAssistantChat(e.as(ada), "Ask")
		require.NoError(t, err)
		require.Equal(t, chat.KindAssistant, c.Kind)
		got, err := e.s.GetChat(e.as(ada), c.ID)
		require.NoError(t, err)
		require.Equal(t, c.ID, got.ID)
		ms, err := e.s.Members(e.as(ada), c.ID)
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.Equal(t, membership.RoleOwner, ms[0].Role)
	})
}

func TestMembers(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, carol, dan := e.user("ada"), e.user("bob"), e.user("carol"), e.user("dan")
		c := e.group(ada, bob)

		// Only owners and admins add; only owners add owners.
		_, err := e.s.AddMember(e.as(bob), c.ID, carol.ID, "")
		requireKind(t, err, store.ErrForbidden)
		m, err := e.s.AddMember(e.as(ada), c.ID, carol.ID, membership.RoleAdmin)
		require.NoError(t, err)
		require.Equal(t, membership.RoleAdmin, m.Role)
		_, err = e.s.AddMember(e.as(carol), c.ID, dan.ID, membership.RoleOwner)
		requireKind(t, err, store.ErrForbidden)
		m, err = e.s.AddMember(e.as(carol), c.ID, dan.ID, "")
		require.NoError(t, err)
		require.Equal(t, membership.RoleMember, m.Role)
		_, err = e.s.AddMember(e.as(ada), c.ID, dan.ID, "")
		requireKind(t, err, database.ErrConflict)
		_, err = e.s.AddMember(e.as(ada), c.ID, uuid.New(), "")
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.AddMember(e.as(ada), c.ID, dan.ID, "boss")
		requireKind(t, err, database.ErrInvalid)

		// Roles: admins switch members and admins; owners anything.
		m, err = e.s.SetRole(e.as(carol), c.ID, bob.ID, membership.RoleAdmin)
		require.NoError(t, err)
		require.Equal(t, membership.RoleAdmin, m.Role)
		_, err = e.s.SetRole(e.as(carol), c.ID, bob.ID, membership.RoleOwner)
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.SetRole(e.as(carol), c.ID, ada.ID, membership.RoleMember)
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.SetRole(e.as(dan), c.ID, dan.ID, membership.RoleAdmin)
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.SetRole(e.as(ada), c.ID, uuid.New(), membership.RoleAdmin)
		requireKind(t, err, database.ErrNotFound)

		// Removing: yourself; others as owner or admin; owners as owner only.
		requireKind(t, e.s.RemoveMember(e.as(dan), c.ID, bob.ID), store.ErrForbidden)
		requireKind(t, e.s.RemoveMember(e.as(carol), c.ID, ada.ID), store.ErrForbidden)
		require.NoError(t, e.s.RemoveMember(e.as(carol), c.ID, bob.ID))
		require.NoError(t, e.s.RemoveMember(e.as(dan), c.ID, dan.ID))
		requireKind(t, e.s.RemoveMember(e.as(ada), c.ID, dan.ID), database.ErrNotFound)

		ms, err := e.s.Members(e.as(ada), c.ID)
		require.NoError(t, err)
		require.Len(t, ms, 2)
		// A former member sees nothing.
		_, err = e.s.Members(e.as(dan), c.ID)
		requireKind(t, err, database.ErrNotFound)
		// Nobody adds a third user to a direct chat.
		d := e.direct(ada, bob)
		_, err = e.s.AddMember(e.as(ada), d.ID, carol.ID, "")
		requireKind(t, err, store.ErrForbidden)
	})
}

func TestArchiveChat(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		c := e.group(ada, bob)
		_, err := e.s.ArchiveChat(e.as(bob), c.ID)
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.ArchiveChat(e.as(carol), c.ID)
		requireKind(t, err, database.ErrNotFound)

		got, err := e.s.ArchiveChat(e.as(ada), c.ID)
		require.NoError(t, err)
		require.NotNil(t, got.ArchivedAt)
		again, err := e.s.ArchiveChat(e.as(ada), c.ID)
		require.NoError(t, err)
		require.True(t, got.ArchivedAt.Equal(*again.ArchivedAt), "archiving again keeps the first time")

		_, err = e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: c.ID, Content: "late"})
		requireKind(t, err, store.ErrForbidden)
		require.Zero(t, e.countMessages(c))
	})
}
