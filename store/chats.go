package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/schema"
)

// CreateDirectChat returns the direct chat between the viewer and otherUserID,
// creating it when there is none: created says which. There is exactly one
// direct chat per pair of users, even when both create it at the same moment
// (the chats.direct_key unique index decides; the loser reads the winner's).
// Both users become owners. A user cannot open a direct chat with themselves
// (database.ErrInvalid), nor with a deleted user (database.ErrNotFound).
//
// Cost: when the chat exists, one SELECT. Otherwise that SELECT and a
// transaction of 9 round trips: BEGIN, the chat rule's SELECT and the chat
// INSERT, a SELECT of the other user, then for each membership the rule's
// SELECT and the INSERT, COMMIT.
// After a lost race, a SELECT of the winner's chat and one of the viewer's
// membership.
func (s *Store) CreateDirectChat(ctx context.Context, otherUserID uuid.UUID) (_ *Chat, created bool, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.CreateDirectChat", uuid.Nil)
	defer span.end(&err)
	const op = "create direct chat"
	if err := ownTx(ctx); err != nil {
		return nil, false, fail(op, err)
	}
	me, err := viewerUser(ctx)
	if err != nil {
		return nil, false, fail(op, err)
	}
	if otherUserID == me {
		return nil, false, fail(op, fmt.Errorf("%w: a direct chat is between two users", database.ErrInvalid))
	}
	key := schema.DirectKey(me, otherUserID)
	c, err := s.client.Chat.Query().Where(chat.DirectKey(key)).Only(ctx)
	switch {
	case err == nil:
		return chatOf(c), false, nil
	case !ent.IsNotFound(err):
		return nil, false, fail(op, err)
	}
	err = s.db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
		// The chat first: its rule says whether the viewer may create chats at
		// all, before anything is said about the other user.
		now := s.clock()
		c, err = tx.Chat.Create().
			SetKind(chat.KindDirect).
			SetCreatedBy(me).
			SetDirectKey(key).
			SetCreatedAt(now).SetUpdatedAt(now).SetLastMessageAt(now).
			Save(ctx)
		if err != nil {
			return err
		}
		ok, err := tx.User.Query().Where(user.ID(otherUserID), user.DeletedAtIsNil()).Exist(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return notFound("user")
		}
		// One at a time: the second is allowed because the first made the viewer
		// an owner.
		for _, id := range []uuid.UUID{me, otherUserID} {
			if _, err := tx.Membership.Create().SetChatID(c.ID).SetUserID(id).SetRole(membership.RoleOwner).SetJoinedAt(now).SetChatLastMessageAt(now).Save(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		return chatOf(c), true, nil
	}
	if !errors.Is(err, database.ErrConflict) {
		return nil, false, fail(op, err)
	}
	// The pair has a direct chat the viewer could not see: another request made
	// it first (the unique index on direct_key refused ours), or the viewer left
	// it. Either way it is theirs: join it if need be and return it.
	out, err := s.joinDirectChat(ctx, key, me)
	if err != nil {
		return nil, false, fail(op, err)
	}
	return out, false, nil
}

// CreateGroupChat creates a group chat titled title, with the viewer as its owner
// and userIDs as members (duplicates and the viewer themselves are ignored),
// up to MaxMembersPerCall of them (database.ErrInvalid beyond, and for a zero
// ID). Unknown or deleted users give database.ErrNotFound and create nothing.
// A chat of more members than the fan-out limit is large from the start (see
// DefaultFanOutLimit).
//
// Cost: one transaction whatever the number of members: the chat's and its
// owner's INSERTs with their rules' SELECTs, then AddMembers's bulk path (a
// temporary table filled by COPY, one check of the users, one INSERT ...
// SELECT, a count) and a SELECT of the chat.
func (s *Store) CreateGroupChat(ctx context.Context, title string, userIDs []uuid.UUID) (_ *Chat, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.CreateGroupChat", uuid.Nil)
	defer span.end(&err)
	const op = "create group chat"
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	me, err := viewerUser(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	ids, err := memberIDs(userIDs, me)
	if err != nil {
		return nil, fail(op, err)
	}
	var c *ent.Chat
	err = s.db.WithConnTx(ctx, func(ctx context.Context, conn *sql.Conn, client *ent.Client) error {
		// The chat first: its rule says whether the viewer may create chats at
		// all, before anything is said about the members.
		var err error
		c, err = s.createChat(ctx, client, chat.KindGroup, title, me)
		if err != nil || len(ids) == 0 {
			return err
		}
		// Members of a new chat join with it.
		_, err = s.addMembers(ctx, conn, client, c.ID, ids, membership.RoleMember, c.CreatedAt)
		if err != nil {
			return err
		}
		c, err = client.Chat.Get(ctx, c.ID)
		return err
	})
	if err != nil {
		return nil, fail(op, err)
	}
	return chatOf(c), nil
}

// CreateAssistantChat creates an assistant chat titled title, with the viewer as
// its owner and only member. Any member of an assistant chat may append
// assistant and tool messages to it (see AppendMessage).
//
// Cost: one transaction of 6 round trips: BEGIN, the chat rule's SELECT and the
// chat INSERT, the membership rule's SELECT and the owner's INSERT, COMMIT.
func (s *Store) CreateAssistantChat(ctx context.Context, title string) (_ *Chat, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.CreateAssistantChat", uuid.Nil)
	defer span.end(&err)
	const op = "create assistant chat"
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	me, err := viewerUser(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	var c *ent.Chat
	err = s.db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
		var err error
		c, err = s.createChat(ctx, tx.Client(), chat.KindAssistant, title, me)
		return err
	})
	if err != nil {
		return nil, fail(op, err)
	}
	return chatOf(c), nil
}

// GetChat returns the chat with the given ID when the viewer is a member of it
// (database.ErrNotFound otherwise, as if it did not exist).
//
// Cost: one SELECT.
func (s *Store) GetChat(ctx context.Context, chatID uuid.UUID) (_ *Chat, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.GetChat", chatID)
	defer span.end(&err)
	c, err := s.reader(ctx).Chat.Query().Where(chat.ID(chatID), chat.DeletedAtIsNil()).Only(ctx)
	if err != nil {
		return nil, fail("get chat", err)
	}
	return chatOf(c), nil
}

// AddMember makes userID a member of chatID with the given role (member when
// empty). Only the chat's owners and admins may add members, only owners may add
// owners, and nobody can add members to a direct chat (ErrForbidden). Adding an
// existing member gives database.ErrConflict.
//
// Cost: a SELECT of the user, then a transaction of the rule's SELECT, the
// chat's (the new member's read position and inbox order), the INSERT, and
// while the chat is not large a count of its members: 7 round trips.
func (s *Store) AddMember(ctx context.Context, chatID, userID uuid.UUID, role membership.Role) (_ *Membership, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.AddMember", chatID)
	defer span.end(&err)
	const op = "add member"
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	if role == "" {
		role = membership.RoleMember
	}
	if err := membership.RoleValidator(role); err != nil {
		return nil, fail(op, invalid("Membership.role", err))
	}
	ok, err := s.client.User.Query().Where(user.ID(userID), user.DeletedAtIsNil()).Exist(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	if !ok {
		return nil, fail(op, notFound("user"))
	}
	var m *ent.Membership
	err = s.db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
		// schema's joinState starts the membership at the chat's last message.
		var err error
		m, err = tx.Membership.Create().
			SetChatID(chatID).
			SetUserID(userID).
			SetRole(role).
			SetJoinedAt(s.clock()).
			Save(ctx)
		if err != nil || m.Large {
			return err
		}
		return s.largeAfterAdd(ctx, tx.Client(), chatID)
	})
	if err != nil {
		return nil, fail(op, err)
	}
	return membershipOf(m), nil
}

// RemoveMember removes userID from chatID. A member may remove themselves; only
// owners and admins may remove others, and only owners may remove an owner.
// Removing a non-member gives database.ErrNotFound.
//
// Cost: one DELETE, with the policy in its WHERE clause; when it removes
// nothing, a SELECT more to tell ErrForbidden from database.ErrNotFound.
func (s *Store) RemoveMember(ctx context.Context, chatID, userID uuid.UUID) (err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.RemoveMember", chatID)
	defer span.end(&err)
	const op = "remove member"
	if err := ownTx(ctx); err != nil {
		return fail(op, err)
	}
	n, err := s.client.Membership.Delete().
		Where(membership.ChatID(chatID), membership.UserID(userID)).
		Exec(ctx)
	if err == nil && n == 0 {
		err = s.whyNoMembership(ctx, chatID, userID)
	}
	return fail(op, err)
}

// SetRole changes userID's role in chatID. Only owners may grant or take away
// the owner role; admins may switch members and admins.
//
// Cost: one UPDATE, with the policy in its WHERE clause, and a SELECT of the
// result; when it updates nothing, a SELECT to say why instead.
func (s *Store) SetRole(ctx context.Context, chatID, userID uuid.UUID, role membership.Role) (_ *Membership, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.SetRole", chatID)
	defer span.end(&err)
	const op = "set role"
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	if err := membership.RoleValidator(role); err != nil {
		return nil, fail(op, invalid("Membership.role", err))
	}
	n, err := s.client.Membership.Update().
		Where(membership.ChatID(chatID), membership.UserID(userID)).
		SetRole(role).
		Save(ctx)
	if err == nil && n == 0 {
		err = s.whyNoMembership(ctx, chatID, userID)
	}
	if err != nil {
		return nil, fail(op, err)
	}
	m, err := s.client.Membership.Query().Where(membership.ChatID(chatID), membership.UserID(userID)).Only(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	return membershipOf(m), nil
}

// ArchiveChat marks chatID archived (archived_at = now); only its owners and
// admins may. Archived chats keep their history and stay in the inbox, flagged by
// Chat.ArchivedAt; appending to them gives ErrForbidden. Archiving an archived
// chat keeps the first time.
//
// Cost: one UPDATE, with the policy in its WHERE clause, and a SELECT of the
// result.
func (s *Store) ArchiveChat(ctx context.Context, chatID uuid.UUID) (_ *Chat, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.ArchiveChat", chatID)
	defer span.end(&err)
	const op = "archive chat"
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	now := s.clock()
	n, err := s.client.Chat.Update().
		Where(chat.ID(chatID), chat.ArchivedAtIsNil(), chat.DeletedAtIsNil()).
		SetArchivedAt(now).SetUpdatedAt(now).
		Save(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	c, err := s.client.Chat.Query().Where(chat.ID(chatID), chat.DeletedAtIsNil()).Only(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	if n == 0 && c.ArchivedAt == nil {
		// The viewer sees the chat but the policy's filter left it out.
		return nil, fail(op, forbidden("only a chat's owners and admins archive it"))
	}
	return chatOf(c), nil
}

// Members returns chatID's members with their profiles, oldest first. The
// viewer must be a member (database.ErrNotFound otherwise). Members whose
// profile the viewer may not see (deleted users) are left out.
//
// Cost: two SELECTs (memberships, then their users in one IN query).
func (s *Store) Members(ctx context.Context, chatID uuid.UUID) (_ []Member, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.Members", chatID)
	defer span.end(&err)
	reader := s.reader(ctx)
	ms, err := reader.Membership.Query().
		Where(membership.ChatID(chatID)).
		Order(membership.ByJoinedAt(), membership.ByID()).
		All(ctx)
	if err != nil {
		return nil, fail("members", err)
	}
	if len(ms) == 0 {
		// A chat the viewer is a member of has at least the viewer.
		return nil, fail("members", notFound("chat"))
	}
	ids := make([]uuid.UUID, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	users, err := reader.User.Query().Where(user.IDIn(ids...)).All(ctx)
	if err != nil {
		return nil, fail("members", err)
	}
	byID := make(map[uuid.UUID]*ent.User, len(users))
	for _, u := range users {
		byID[u.ID] = u
	}
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		if u, ok := byID[m.UserID]; ok {
			out = append(out, Member{Membership: *membershipOf(m), User: *userOf(u)})
		}
	}
	return out, nil
}

// errDirectDeleted reports a pair whose direct chat was soft-deleted: its
// direct_key stays taken, so the pair cannot have another.
var errDirectDeleted = fmt.Errorf("%w: the direct chat of this pair was deleted", database.ErrConflict)

// createChat inserts a chat of the given kind and makes creator its owner.
func (s *Store) createChat(ctx context.Context, tx *ent.Client, kind chat.Kind, title string, creator uuid.UUID) (*ent.Chat, error) {
	now := s.clock()
	cc := tx.Chat.Create().
		SetKind(kind).
		SetCreatedBy(creator).
		SetCreatedAt(now).SetUpdatedAt(now).SetLastMessageAt(now)
	if title != "" {
		cc.SetTitle(title)
	}
	c, err := cc.Save(ctx)
	if err != nil {
		return nil, err
	}
	_, err = tx.Membership.Create().
		SetChatID(c.ID).
		SetUserID(creator).
		SetRole(membership.RoleOwner).
		SetJoinedAt(now).
		SetChatLastMessageAt(now).
		Save(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// joinDirectChat returns the direct chat with the given key, making the viewer
// (one of its pair) a member again if they had left it.
//
// Cost: one SELECT of the chat's ID, an INSERT of the membership if needed,
// and a SELECT of the chat.
func (s *Store) joinDirectChat(ctx context.Context, key string, me uuid.UUID) (*Chat, error) {
	// The viewer is named in the key, so the chat's ID and whether it was
	// deleted are theirs to know even while they are not a member; whether
	// they may join it again is the membership rule's to say.
	found, err := s.client.Chat.Query().Where(chat.DirectKey(key)).
		Select(chat.FieldID, chat.FieldDeletedAt).
		Only(privacy.DecisionContext(ctx, privacy.Allow))
	if err != nil {
		return nil, err
	}
	if found.DeletedAt != nil {
		return nil, errDirectDeleted
	}
	id := found.ID
	now := s.clock()
	_, err = s.client.Membership.Create().
		SetChatID(id).
		SetUserID(me).
		SetRole(membership.RoleOwner).
		SetJoinedAt(now).
		SetChatLastMessageAt(now).
		Save(ctx)
	if err != nil && !errors.Is(database.MapError(err), database.ErrConflict) {
		return nil, err
	}
	c, err := s.client.Chat.Query().Where(chat.ID(id)).Only(ctx)
	if err != nil {
		return nil, err
	}
	return chatOf(c), nil
}

// whyNoMembership explains an update or delete of (chatID, userID) that matched
// no row: ErrForbidden when the viewer can see the membership, so the privacy
// filter left it out, database.ErrNotFound when there is none the viewer can see.
//
// Cost: one SELECT, on the failure path only.
func (s *Store) whyNoMembership(ctx context.Context, chatID, userID uuid.UUID) error {
	ok, err := s.client.Membership.Query().
		Where(membership.ChatID(chatID), membership.UserID(userID)).
		Exist(ctx)
	switch {
	case err != nil:
		return err
	case ok:
		return forbidden("the viewer's role does not allow this")
	default:
		return notFound("membership")
	}
}
