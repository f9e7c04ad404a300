package database_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/viewer"
)

// Open an embedded SQLite database, apply the migrations, and write a user, a chat
// and a first message in one transaction.
func Example() {
	ctx := viewer.SystemContext(context.Background())
	dir, err := os.MkdirTemp("", "chatdb-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := database.Open(ctx, database.Config{URL: "sqlite://" + filepath.Join(dir, "chat.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := database.Migrate(ctx, db); err != nil {
		log.Fatal(err)
	}
	fmt.Println(db.Dialect(), db.Driver())

	err = db.WithTx(ctx, func(tx *ent.Tx) error {
		alice, err := tx.User.Create().
			SetEmail("  Alice@Example.COM ").
			SetDisplayName("Alice").
			Save(ctx)
		if err != nil {
			return err
		}
		c, err := tx.Chat.Create().
			SetKind(chat.KindAssistant).
			SetTitle("Trip planning").
			SetCreatedBy(alice.ID).
			Save(ctx)
		if err != nil {
			return err
		}
		return tx.Message.Create().
			SetChatID(c.ID).
			SetSenderID(alice.ID).
			SetRole(message.RoleUser).
			SetContent("Where should we go in May?").
			Exec(ctx)
	})
	if err != nil {
		log.Fatal(err)
	}

	u, err := db.Client().User.Query().Only(ctx)
	if err != nil {
		log.Fatal(err)
	}
	n, err := db.Client().Message.Query().Count(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Email, n)

	// A second account with the same address, in any case, is a conflict; the
	// failed transaction leaves nothing behind.
	err = db.WithTx(ctx, func(tx *ent.Tx) error {
		return tx.User.Create().SetEmail("ALICE@example.com").SetDisplayName("Alice 2").Exec(ctx)
	})
	fmt.Println(errors.Is(err, database.ErrConflict))

	// Output:
	// sqlite3 sqlite
	// alice@example.com 1
	// true
}
