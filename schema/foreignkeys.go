package schema

import (
	"fmt"

	entschema "entgo.io/ent/dialect/sql/schema"
)

// UserReference is a foreign key into users that the schema declares here
// rather than as an ent edge. An edge is also a query predicate: an edge from
// users would let any signed-in user filter users by chats, memberships or
// messages they may not see, and an edge into users would let members filter by
// the profile of a deleted user (see User.Edges). The constraints stay in the
// database all the same.
type UserReference struct {
	// Table and Column hold the reference; Symbol names the constraint.
	Table, Column, Symbol string
	// OnDelete is what removing the user for good does to the row.
	OnDelete entschema.ReferenceOption
}

// UserReferences are the foreign keys into users.id, with the names and delete
// behaviour the edges had.
var UserReferences = []UserReference{
	// Users are soft-deleted; hard-deleting one who created chats is refused
	// rather than leaving chats without a creator. NO ACTION, not RESTRICT: the
	// same refusal, reported by SQLite as a foreign key error.
	{Table: "chats", Column: "created_by", Symbol: "chats_created_by_fkey", OnDelete: entschema.NoAction},
	// A user erased for good leaves none of their memberships behind. No index
	// leads with memberships.user_id alone (see Membership.Indexes), so the
	// cascade reads the whole table: erasing a user is rare, an inbox is not.
	{Table: "memberships", Column: "user_id", Symbol: "memberships_user_id_fkey", OnDelete: entschema.Cascade},
	// A hard-deleted user's messages stay in their chats, without a sender.
	{Table: "messages", Column: "sender_id", Symbol: "messages_sender_id_fkey", OnDelete: entschema.SetNull},
	// A credential is nothing without its user.
	{Table: "credentials", Column: "user_id", Symbol: "credentials_user_id_fkey", OnDelete: entschema.Cascade},
}

// AddUserReferences adds UserReferences to tables, ent's generated table
// definitions (ent/migrate.Tables), before they are planned into migrations.
// It is idempotent: a reference already there is left alone.
func AddUserReferences(tables []*entschema.Table) error {
	byName := make(map[string]*entschema.Table, len(tables))
	for _, t := range tables {
		byName[t.Name] = t
	}
	users := byName["users"]
	if users == nil {
		return fmt.Errorf("schema: no users table to reference")
	}
	for _, r := range UserReferences {
		t := byName[r.Table]
		if t == nil {
			return fmt.Errorf("schema: reference %s: no table %s", r.Symbol, r.Table)
		}
		col, ok := t.Column(r.Column)
		if !ok {
			return fmt.Errorf("schema: reference %s: no column %s.%s", r.Symbol, r.Table, r.Column)
		}
		if hasForeignKey(t, r.Symbol) {
			continue
		}
		t.AddForeignKey(&entschema.ForeignKey{
			Symbol:     r.Symbol,
			Columns:    []*entschema.Column{col},
			RefTable:   users,
			RefColumns: []*entschema.Column{users.PrimaryKey[0]},
			OnDelete:   r.OnDelete,
		})
	}
	return nil
}

func hasForeignKey(t *entschema.Table, symbol string) bool {
	for _, fk := range t.ForeignKeys {
		if fk.Symbol == symbol {
			return true
		}
	}
	return false
}
