package viewer_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/viewer"
)

func TestViewer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	id := uuid.New()

	_, ok := viewer.FromContext(ctx)
	require.False(t, ok, "no viewer by default")

	v, ok := viewer.FromContext(viewer.NewContext(ctx, id))
	require.True(t, ok)
	got, isUser := v.UserID()
	require.True(t, isUser)
	require.Equal(t, id, got)
	require.False(t, v.IsSystem())
	require.Equal(t, "user "+id.String(), v.String())

	v, ok = viewer.FromContext(viewer.SystemContext(ctx))
	require.True(t, ok)
	require.True(t, v.IsSystem())
	_, isUser = v.UserID()
	require.False(t, isUser, "the system is no user")
	require.Equal(t, "system", v.String())

	_, ok = viewer.FromContext(viewer.NewContext(ctx, uuid.Nil))
	require.False(t, ok, "a nil user ID is no viewer")
	require.Equal(t, "nobody", viewer.Viewer{}.String())

	// The innermost viewer wins: a user context derived from a system one is the user.
	v, _ = viewer.FromContext(viewer.NewContext(viewer.SystemContext(ctx), id))
	require.False(t, v.IsSystem())
	v, _ = viewer.FromContext(viewer.SystemContext(viewer.NewContext(ctx, id)))
	require.True(t, v.IsSystem())
}
