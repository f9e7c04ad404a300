package migration

import (
	"context"
	"fmt"
	"strings"

	"ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlcheck"
)

// ShardAnalyzer is the name of chatdb's own analyzer: shard-readiness. Atlas
// does not have it, so `atlas migrate lint` does not report what it finds.
//
// The plan for more than one server (SCALING.md) distributes every chat-scoped
// table by its chat, as Citus does with a distribution column, so that a chat's
// rows live together and every chat operation runs on one node. Two things a
// migration can add stop that plan from working, and this analyzer reports
// them, as warnings (they are choices to make knowingly, not mistakes):
//
//   - SR101: a primary key or unique index on a chat-scoped table that does not
//     include the chat's key. A distributed database enforces uniqueness per
//     shard only, so the key must contain the column the rows are placed by.
//   - SR102: a foreign key from a chat-scoped table to another chat-scoped
//     table that does not pair the two chat keys. It could join rows of two
//     different chats, which live on different nodes.
//
// A table is chat-scoped when it has a chat_id column; chats itself is, with
// id as its chat key. Tables that are not (users, credentials) become
// reference tables, copied to every node, and any key on them is fine, as is
// a foreign key into them.
const ShardAnalyzer = "shard-readiness"

// Codes of the shard-readiness findings.
const (
	codeShardKey        = "SR101"
	codeShardForeignKey = "SR102"
)

// shardReadiness implements sqlcheck.NamedAnalyzer. It runs on PostgreSQL
// files only: SQLite is the embedded database and is never sharded.
type shardReadiness struct{}

// Name implements sqlcheck.NamedAnalyzer.
func (shardReadiness) Name() string { return ShardAnalyzer }

// Analyze implements sqlcheck.Analyzer: it reports each key and foreign key
// that a statement of the file adds or changes and that breaks the rules above.
func (shardReadiness) Analyze(_ context.Context, p *sqlcheck.Pass) error {
	var diags []sqlcheck.Diagnostic
	for _, c := range p.File.Changes {
		for _, ch := range c.Changes {
			for _, text := range shardProblems(ch) {
				code, msg, _ := strings.Cut(text, " ")
				diags = append(diags, sqlcheck.Diagnostic{Pos: c.Stmt.Pos, Code: code, Text: msg})
			}
		}
	}
	if len(diags) > 0 {
		p.Reporter.WriteReport(sqlcheck.Report{Text: "shard-readiness", Diagnostics: diags})
	}
	return nil
}

// shardProblems returns, as "CODE message", what change adds against the rules.
func shardProblems(ch schema.Change) []string {
	var out []string
	switch ch := ch.(type) {
	case *schema.AddTable:
		t := ch.T
		if t.PrimaryKey != nil {
			out = append(out, keyProblem(t, "primary key", t.PrimaryKey)...)
		}
		for _, idx := range t.Indexes {
			if idx.Unique {
				out = append(out, keyProblem(t, "unique index "+idx.Name, idx)...)
			}
		}
		for _, fk := range t.ForeignKeys {
			out = append(out, foreignKeyProblem(t, fk)...)
		}
	case *schema.ModifyTable:
		for _, c := range ch.Changes {
			switch c := c.(type) {
			case *schema.AddPrimaryKey:
				out = append(out, keyProblem(ch.T, "primary key", c.P)...)
			case *schema.ModifyPrimaryKey:
				out = append(out, keyProblem(ch.T, "primary key", c.To)...)
			case *schema.AddIndex:
				if c.I.Unique {
					out = append(out, keyProblem(ch.T, "unique index "+c.I.Name, c.I)...)
				}
			case *schema.ModifyIndex:
				if c.To.Unique {
					out = append(out, keyProblem(ch.T, "unique index "+c.To.Name, c.To)...)
				}
			case *schema.AddForeignKey:
				out = append(out, foreignKeyProblem(ch.T, c.F)...)
			case *schema.ModifyForeignKey:
				out = append(out, foreignKeyProblem(ch.T, c.To)...)
			}
		}
	}
	return out
}

// chatKey returns the column that places t's rows by chat, or "" when t is not
// chat-scoped.
func chatKey(t *schema.Table) string {
	if t == nil {
		return ""
	}
	if t.Name == "chats" {
		return "id"
	}
	if _, ok := t.Column("chat_id"); ok {
		return "chat_id"
	}
	return ""
}

func keyProblem(t *schema.Table, what string, idx *schema.Index) []string {
	key := chatKey(t)
	if key == "" {
		return nil
	}
	for _, p := range idx.Parts {
		if p.C != nil && p.C.Name == key {
			return nil
		}
	}
	return []string{fmt.Sprintf("%s %s of chat-scoped table %q does not include %s: a sharded database enforces it per chat's node only",
		codeShardKey, what, t.Name, key)}
}

func foreignKeyProblem(t *schema.Table, fk *schema.ForeignKey) []string {
	from, to := chatKey(t), chatKey(fk.RefTable)
	if from == "" || to == "" {
		return nil
	}
	for i, c := range fk.Columns {
		if c.Name == from && i < len(fk.RefColumns) && fk.RefColumns[i].Name == to {
			return nil
		}
	}
	return []string{fmt.Sprintf("%s foreign key %s from chat-scoped table %q to %q does not pair %s with %s: it can join rows of two chats, which a sharded database keeps on different nodes",
		codeShardForeignKey, fk.Symbol, t.Name, fk.RefTable.Name, from, to)}
}
