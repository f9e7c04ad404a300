package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// A tour of the store on an embedded SQLite database: sign two users up, open
// their direct chat, talk, read the history a page at a time, and look at an
// inbox before and after reading.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "chatdb-store-example-")
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
	s := store.New(db)

	// Signing up is the platform's doing: the system viewer.
	sys := viewer.SystemContext(ctx)
	ada, err := s.CreateUser(sys, store.NewUser{Email: "Ada@Example.com", DisplayName: "Ada"})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := s.CreateUser(sys, store.NewUser{Email: "bob@example.com", DisplayName: "Bob"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed up:", ada.Email, "and", bob.Email)

	// Everything else is done as a user.
	asAda, asBob := viewer.NewContext(ctx, ada.ID), viewer.NewContext(ctx, bob.ID)
	chat, created, err := s.CreateDirectChat(asAda, bob.ID)
	if err != nil {
		log.Fatal(err)
	}
	again, created2, err := s.CreateDirectChat(asBob, ada.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("direct chat created:", created, "- and from Bob's side:", created2, again.ID == chat.ID)

	for _, line := range []string{"Hi Bob!", "Are you coming on Friday?", "Bring the maps."} {
		if _, err := s.AppendMessage(asAda, store.NewMessage{ChatID: chat.ID, Content: line}); err != nil {
			log.Fatal(err)
		}
	}

	inbox, err := s.Inbox(asBob, store.InboxQuery{})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range inbox {
		fmt.Printf("Bob's inbox: %s chat, %d unread, last: %q\n", e.Chat.Kind, e.Unread, e.LastMessage.Content)
	}

	// History, newest first, two at a time.
	q := store.HistoryQuery{Limit: 2}
	for page := 1; ; page++ {
		h, err := s.History(asBob, chat.ID, q)
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range h.Messages {
			fmt.Printf("page %d: %s\n", page, m.Content)
		}
		if h.Next == "" {
			break
		}
		q.Before = h.Next
	}

	reply, err := s.AppendMessage(asBob, store.NewMessage{ChatID: chat.ID, Content: "Yes! See you."})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.MarkRead(asBob, chat.ID, reply.ID); err != nil {
		log.Fatal(err)
	}
	inbox, err = s.Inbox(asBob, store.InboxQuery{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Bob's inbox after reading: %d unread, last: %q\n", inbox[0].Unread, inbox[0].LastMessage.Content)
	inbox, err = s.Inbox(asAda, store.InboxQuery{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Ada's inbox: %d unread\n", inbox[0].Unread)

	// Output:
	// signed up: ada@example.com and bob@example.com
	// direct chat created: true - and from Bob's side: false true
	// Bob's inbox: direct chat, 3 unread, last: "Bring the maps."
	// page 1: Bring the maps.
	// page 1: Are you coming on Friday?
	// page 2: Hi Bob!
	// Bob's inbox after reading: 0 unread, last: "Yes! See you."
	// Ada's inbox: 1 unread
}
