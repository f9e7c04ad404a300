package store_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/store"
)

// transferOwnership makes to the chat's only owner in one SERIALIZABLE
// transaction: it reads the owners, demotes them to admin and promotes to. Two
// transfers at once are a write skew that READ COMMITTED would let through (two
// owners); SERIALIZABLE turns it into a serialization failure, which WithRetry
// runs again. before, when set, runs after the read on each attempt.
func transferOwnership(ctx context.Context, db *database.DB, c *store.Chat, to *store.User, attempts *atomic.Int32, before func()) error {
	return db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
		attempts.Add(1)
		owners, err := tx.Membership.Query().
			Where(membership.ChatID(c.ID), membership.RoleEQ(membership.RoleOwner)).
			All(ctx)
		if err != nil {
			return err
		}
		if before != nil {
			before()
		}
		for _, o := range owners {
			if o.UserID == to.ID {
				continue
			}
			if err := tx.Membership.UpdateOne(o).SetRole(membership.RoleAdmin).Exec(ctx); err != nil {
				return err
			}
		}
		return tx.Membership.Update().
			Where(membership.ChatID(c.ID), membership.UserID(to.ID)).
			SetRole(membership.RoleOwner).
			Exec(ctx)
	}, database.WithIsolation(sql.LevelSerializable), database.WithRetry(50))
}

// requireOneOwner checks the final state: exactly one owner, every other member
// still a member (nobody lost, nobody added).
func requireOneOwner(t *testing.T, e *env, c *store.Chat, members int) {
	t.Helper()
	all, err := e.db.Client().Membership.Query().Where(membership.ChatID(c.ID)).All(e.sys())
	require.NoError(t, err)
	require.Len(t, all, members)
	owners := 0
	for _, m := range all {
		if m.Role == membership.RoleOwner {
			owners++
		}
	}
	require.Equal(t, 1, owners, "a chat has exactly one owner after concurrent transfers")
}

// TestConcurrentOwnershipTransfers: many transfers of a chat's ownership at once
// all succeed, retried through serialization failures (PostgreSQL) or the write
// lock (SQLite), and leave exactly one owner.
func TestConcurrentOwnershipTransfers(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		owner := e.user("owner")
		var others []*store.User
		for range 6 {
			others = append(others, e.user("member"))
		}
		c := e.group(owner, others...)

		var (
			wg       sync.WaitGroup
			attempts atomic.Int32
			errs     = make([]error, 3*len(others))
		)
		for i := range errs {
			wg.Go(func() {
				errs[i] = transferOwnership(e.sys(), e.db, c, others[i%len(others)], &attempts, nil)
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		requireOneOwner(t, e, c, len(others)+1)
		require.GreaterOrEqual(t, int(attempts.Load()), len(errs))
	})
}

// TestOwnershipTransferWriteSkew forces the write skew: two transfers both read
// the owner before either writes. On PostgreSQL one of them must fail with a
// real serialization failure and succeed when run again.
func TestOwnershipTransferWriteSkew(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		e := newEnv(t, target)
		owner, a, b := e.user("owner"), e.user("a"), e.user("b")
		c := e.group(owner, a, b)

		var (
			read     sync.WaitGroup // both first attempts have read the owners
			wg       sync.WaitGroup
			attempts atomic.Int32
			errs     [2]error
		)
		read.Add(2)
		for i, to := range []*store.User{a, b} {
			wg.Go(func() {
				var once sync.Once
				errs[i] = transferOwnership(e.sys(), e.db, c, to, &attempts, func() {
					once.Do(func() { read.Done(); read.Wait() })
				})
			})
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.Greater(t, int(attempts.Load()), 2, "the loser of the write skew ran again")
		requireOneOwner(t, e, c, 3)

		// Without retries the loser sees the classified failure.
		read.Add(2)
		var single atomic.Int32
		for i, to := range []*store.User{a, b} {
			wg.Go(func() {
				var once sync.Once
				errs[i] = e.db.WithTxContext(e.sys(), func(ctx context.Context, tx *ent.Tx) error {
					single.Add(1)
					if _, err := tx.Membership.Query().Where(membership.ChatID(c.ID), membership.RoleEQ(membership.RoleOwner)).All(ctx); err != nil {
						return err
					}
					once.Do(func() { read.Done(); read.Wait() })
					if err := tx.Membership.Update().Where(membership.ChatID(c.ID), membership.RoleEQ(membership.RoleOwner)).SetRole(membership.RoleAdmin).Exec(ctx); err != nil {
						return err
					}
					return tx.Membership.Update().Where(membership.ChatID(c.ID), membership.UserID(to.ID)).SetRole(membership.RoleOwner).Exec(ctx)
				}, database.WithIsolation(sql.LevelSerializable))
			})
		}
		wg.Wait()
		failed := 0
		for _, err := range errs {
			if err != nil {
				require.True(t, errors.Is(err, database.ErrSerialization), "got %v", err)
				failed++
			}
		}
		require.Equal(t, 1, failed, "exactly one of the two loses")
		require.Equal(t, int32(2), single.Load())
		requireOneOwner(t, e, c, 3)
	})
}
