package database_test

import (
	"context"
	"errors"
	"log"
	"net/http"

	"github.com/chatdb/chatdb/database"
)

// Read your writes across requests and servers: the handler takes the
// client's token from a header, writes and reads with the context it makes,
// and hands the new token back. The next request, served by any application
// server, reads from a replica only once that replica has replayed the write.
func ExampleWithToken() {
	cfg, err := database.ConfigFromEnv() // DATABASE_URL, CHATDB_REPLICA_URLS, ...
	if err != nil {
		log.Fatal(err)
	}
	db, err := database.Open(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/post", func(w http.ResponseWriter, r *http.Request) {
		ctx, err := database.WithToken(r.Context(), r.Header.Get("Chat-Token"))
		if errors.Is(err, database.ErrInvalid) {
			http.Error(w, "bad token", http.StatusBadRequest)
			return
		}
		// ... store writes and reads with ctx: the writes go to the primary,
		// and the reads after them too ...
		token, err := db.Token(ctx) // one round trip, only after a write
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Chat-Token", token)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
}
