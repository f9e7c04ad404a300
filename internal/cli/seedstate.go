package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/user"
)

// seedStored is what earlier runs of a plan stored: the plan's users, chats
// and messages found in the database. A run stores each user and each chat
// (with its members) in a transaction of its own, and each chat's messages in
// order, a batch per transaction, so an interrupted run leaves whole users,
// whole chats and, in each chat, the first messages of its plan.
type seedStored struct {
	users    map[int]uuid.UUID // plan's user index: ID
	chats    map[int]uuid.UUID // plan's chat index: ID
	messages map[int]int       // plan's chat index: messages stored
}

// empty reports whether nothing of the plan is stored.
func (s *seedStored) empty() bool { return len(s.users) == 0 }

// totals counts what is stored.
func (s *seedStored) totals() (users, chats, messages int) {
	for _, n := range s.messages {
		messages += n
	}
	return len(s.users), len(s.chats), messages
}

// complete reports whether the whole plan is stored.
func (s *seedStored) complete(p *seedPlan) bool {
	users, chats, messages := s.totals()
	return users == len(p.users) && chats == len(p.chats) && messages == p.messageCount()
}

// describe says how much of p is stored, for messages.
func (s *seedStored) describe(p *seedPlan) string {
	users, chats, messages := s.totals()
	return fmt.Sprintf("%d of %d users, %d of %d chats and %d of %d messages", users, len(p.users), chats, len(p.chats), messages, p.messageCount())
}

// errSeedMismatch is returned when the database holds data of the plan's seed
// that the plan does not make: another run with the same --seed and other
// counts.
var errSeedMismatch = errors.New("the database holds data of this seed that these counts do not make")

// seedBatch bounds the IDs in one IN list, well under both dialects' limits
// on parameters.
const seedBatch = 500

// loadSeedStored finds what earlier runs of p stored in db, as the system
// viewer (ctx). Users are found by the seed's email domain, chats by their
// creators, kinds, titles and members, and each chat's stored messages by its
// last sequence number. It returns errSeedMismatch when something found is
// not the plan's. Cost: one query per 500 users, chats and memberships' chats.
func loadSeedStored(ctx context.Context, db *database.DB, p *seedPlan) (*seedStored, error) {
	st := &seedStored{users: map[int]uuid.UUID{}, chats: map[int]uuid.UUID{}, messages: map[int]int{}}
	client := db.Client()
	found, err := client.User.Query().Where(user.EmailHasSuffix(fmt.Sprintf("@s%d.example.org", p.seed))).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("seed: find the seed's users: %w", database.MapError(err))
	}
	if len(found) == 0 {
		return st, nil
	}
	byEmail := map[string]uuid.UUID{}
	for _, u := range found {
		byEmail[u.Email] = u.ID
	}
	index := map[uuid.UUID]int{} // user ID: plan's index
	for i, u := range p.users {
		if id, ok := byEmail[u.email]; ok {
			st.users[i], index[id] = id, i
		}
	}
	if len(st.users) != len(found) {
		return nil, fmt.Errorf("%w: %d of its users are not among these --users", errSeedMismatch, len(found)-len(st.users))
	}

	// The stored chats by the plan's users, keyed as the plan's are.
	ids := make([]uuid.UUID, 0, len(st.users))
	for _, id := range st.users {
		ids = append(ids, id)
	}
	type storedChat struct {
		id      uuid.UUID
		lastSeq int64
	}
	stored := map[string][]storedChat{}
	var chatIDs []uuid.UUID
	creator := map[uuid.UUID]int{}
	kinds := map[uuid.UUID]chat.Kind{}
	titles := map[uuid.UUID]string{}
	lastSeq := map[uuid.UUID]int64{}
	for part := range slices.Chunk(ids, seedBatch) {
		chats, err := client.Chat.Query().Where(chat.CreatedByIn(part...)).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("seed: find the seed's chats: %w", database.MapError(err))
		}
		for _, c := range chats {
			chatIDs = append(chatIDs, c.ID)
			creator[c.ID], kinds[c.ID], titles[c.ID], lastSeq[c.ID] = index[c.CreatedBy], c.Kind, c.Title, c.LastSeq
		}
	}
	members := map[uuid.UUID][]int{}
	for part := range slices.Chunk(chatIDs, seedBatch) {
		ms, err := client.Membership.Query().Where(membership.ChatIDIn(part...)).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("seed: find the seed's members: %w", database.MapError(err))
		}
		for _, m := range ms {
			i, ok := index[m.UserID]
			if !ok {
				return nil, fmt.Errorf("%w: a chat of its users has a member who is not one of them", errSeedMismatch)
			}
			members[m.ChatID] = append(members[m.ChatID], i)
		}
	}
	for _, id := range chatIDs {
		key := seedChatKey(kinds[id], titles[id], creator[id], members[id])
		stored[key] = append(stored[key], storedChat{id: id, lastSeq: lastSeq[id]})
	}
	// Plan chats in order take the stored chats with their key, so that two
	// chats the plan makes alike match two stored ones.
	for i, c := range p.chats {
		key := seedChatKey(c.kind, c.title, c.creator, append([]int{c.creator}, c.members...))
		if len(stored[key]) == 0 {
			continue
		}
		s := stored[key][0]
		stored[key] = stored[key][1:]
		if int(s.lastSeq) > c.count {
			return nil, fmt.Errorf("%w: a chat holds %d messages where these counts make %d", errSeedMismatch, s.lastSeq, c.count)
		}
		st.chats[i], st.messages[i] = s.id, int(s.lastSeq)
	}
	if len(st.chats) != len(chatIDs) {
		return nil, fmt.Errorf("%w: %d of its chats are not among these --chats", errSeedMismatch, len(chatIDs)-len(st.chats))
	}
	return st, nil
}

// seedChatKey identifies a chat of a plan by what the plan decides of it:
// kind, title, creator and members (the creator among them), as indexes into
// the plan's users.
func seedChatKey(kind chat.Kind, title string, creator int, members []int) string {
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprint(m)
	}
	return fmt.Sprintf("%s\x00%s\x00%d\x00%s", kind, title, creator, strings.Join(parts, ","))
}
