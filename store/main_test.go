package store_test

import (
	"os"
	"testing"

	"github.com/chatdb/chatdb/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m, dbtest.WithPgBouncer())) }
