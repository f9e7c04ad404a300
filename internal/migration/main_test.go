package migration_test

import (
	"os"
	"testing"

	"github.com/chatdb/chatdb/dbtest"
)

// TestMain stops the throwaway PostgreSQL cluster dbtest starts when no other
// server can be found.
func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
