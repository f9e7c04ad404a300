# Atlas project file (https://atlasgo.io/atlas-schema/projects).
#
# chatdb plans and applies its migrations itself: `chatdb migrate diff NAME`
# writes the files, `chatdb migrate apply` and database.Migrate apply them. This
# file lets the Atlas CLI work on the same directories and the same databases
# (lint, status, validate, apply), with the same results:
#
#   atlas migrate lint     --env ci --git-base main
#   atlas migrate status   --env local
#   atlas migrate validate --env sqlite
#
# On a fresh checkout, the local and ci envs need one database that nothing
# else creates: Atlas's dev database, an empty database on the local server
# that Atlas replays the directory on and wipes (Docker, Atlas's usual dev
# database, is not available here). Create it once, and for local the target
# database too, unless DATABASE_URL names another:
#
#   createdb -h 127.0.0.1 -U postgres chatdb_atlas_dev
#   createdb -h 127.0.0.1 -U postgres chat
#
# ATLAS_DEV_URL names another dev database (keep nothing in it); DATABASE_URL
# another target. ci lints and validates, which need no target. (chatdb migrate
# diff and lint need none of this: they create and drop a chatdb_dev_* database
# of their own.)
#
# Both tools record applied files in the revisions table
# atlas_schema_revisions.atlas_schema_revisions (PostgreSQL) or
# atlas_schema_revisions (SQLite). On PostgreSQL they also take the same lock,
# the advisory lock keyed by "atlas_migrate_execute", so an atlas migrate apply
# and a chatdb migrate apply (or database.Migrate) wait for each other. On
# SQLite they share no lock: the Atlas CLI's is a file in the temporary
# directory (atlas_migrate_execute.lock, which lapses after its --lock-timeout),
# chatdb's is the database file's write lock, taken for each file, and the
# Atlas CLI writes a file's revision only after committing the file. Do not run
# the two against one SQLite file at once.

variable "url" {
  type        = string
  default     = getenv("DATABASE_URL")
  description = "Database to apply to or report on, for local and ci; empty means the local server's database chat."
}

variable "dev_url" {
  type        = string
  default     = getenv("ATLAS_DEV_URL")
  description = "Atlas's dev database for local and ci; empty means chatdb_atlas_dev on the local server."
}

locals {
  # The desired schema: the ent schemas in ./schema, loaded by the Atlas CLI's
  # ent integration (it needs entgo.io/ent in go.mod, which it is).
  src = "ent://schema"

  url = var.url != "" ? var.url : "postgres://postgres@127.0.0.1:5432/chat?sslmode=disable"

  # Atlas's dev database must be empty, and Atlas wipes it: never point it at a
  # database that matters. search_path binds it to one schema, as chatdb's own
  # planner is bound: the migration files name no schema, and a realm-wide dev
  # database would plan schema-qualified statements instead.
  pg_dev = var.dev_url != "" ? var.dev_url : "postgres://postgres@127.0.0.1:5432/chatdb_atlas_dev?search_path=public&sslmode=disable"

  # Files are written with two-space indentation, as chatdb migrate diff does.
  diff_format = "{{ sql . \"  \" }}"
}

# Lint rules for every env: a migration that drops data, depends on the data
# already in the table (adding a unique index, a NOT NULL column without a
# default) or breaks running application code (renames) fails the lint.
# `chatdb migrate lint` applies the same rules (migration.LintRules; condrop, not
# listed, warns in both). When a change is intended, say so in the file, right
# before the statement: `-- atlas:nolint <analyzer or code> <reason>`, then
# `chatdb migrate hash`. chatdb requires the analyzers and the reason; the Atlas
# CLI reads the same directive.
lint {
  destructive {
    error = true
  }
  data_depend {
    error = true
  }
  incompatible {
    error = true
  }
}

# A developer's PostgreSQL: DATABASE_URL, else the local server's chat, as
# the target.
env "local" {
  src = local.src
  url = local.url
  dev = local.pg_dev
  migration {
    dir = "file://migrations/postgres"
    # Where chatdb keeps it, whether or not the URL names a schema.
    revisions_schema = "atlas_schema_revisions"
  }
  format {
    migrate {
      diff = local.diff_format
    }
  }
}

# CI: lint and validate the PostgreSQL directory on the CI runner's local
# server; only the files added since main are linted.
env "ci" {
  src = local.src
  url = local.url
  dev = local.pg_dev
  migration {
    dir              = "file://migrations/postgres"
    revisions_schema = "atlas_schema_revisions"
  }
  format {
    migrate {
      diff = local.diff_format
    }
  }
  lint {
    git {
      base = "main"
    }
  }
}

# The embedded SQLite database. The target is chatdb's default file in the
# working directory (database.DefaultSQLitePath); the dev database lives in
# memory.
env "sqlite" {
  src = local.src
  url = "sqlite://chatdb.db?_fk=1"
  dev = "sqlite://dev?mode=memory&_fk=1"
  migration {
    dir = "file://migrations/sqlite"
  }
  format {
    migrate {
      diff = local.diff_format
    }
  }
}
