// Package chatdb is a schema-first data platform for chat applications.
//
// The packages that applications use are [github.com/chatdb/chatdb/database] (open,
// close, transactions, migrations, error mapping) and the generated typed client in
// [github.com/chatdb/chatdb/ent]. This package holds only the go:generate line that
// regenerates the client from [github.com/chatdb/chatdb/schema].
package chatdb
