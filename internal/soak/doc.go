// Package soak holds chatdb's soak test: many concurrent clients drive the store
// on a throwaway PostgreSQL cluster for a bounded time while idle and active
// backends are terminated, the server is restarted, and contexts are cancelled
// at random; then every acknowledged message must be stored exactly once, in
// order. It is not part of the default test run; start it with a duration:
//
//	go test ./internal/soak -run TestSoak -soak=3m -v
//	CHATDB_SOAK=3m go test ./internal/soak -run TestSoak -v
//
// -soak.driver=pgx or pq runs one driver only (both by default, one after the
// other, each for the whole duration); -soak.clients sets the number of
// appending clients (32).
package soak
