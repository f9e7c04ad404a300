package migration_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/internal/migration"
)

// TestAtlasHCL checks the project file the Atlas CLI reads: it parses, it has the
// envs the docs name, and each env's migration directory exists and holds an
// atlas.sum. (The CLI itself cannot be installed here.)
func TestAtlasHCL(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "atlas.hcl")
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	f, diags := hclsyntax.ParseConfig(src, "atlas.hcl", hcl.InitialPos)
	require.False(t, diags.HasErrors(), diags.Error())
	body := f.Body.(*hclsyntax.Body)

	envs := map[string]*hclsyntax.Block{}
	var lint *hclsyntax.Block
	for _, b := range body.Blocks {
		switch b.Type {
		case "env":
			require.Len(t, b.Labels, 1)
			envs[b.Labels[0]] = b
		case "lint":
			lint = b
		}
	}
	require.NotNil(t, lint, "a top-level lint block")
	rules := map[string]bool{}
	for _, b := range lint.Body.Blocks {
		v, diags := b.Body.Attributes["error"].Expr.Value(nil)
		require.False(t, diags.HasErrors(), diags.Error())
		rules[b.Type] = v.True()
	}
	require.Equal(t, map[string]bool{"destructive": true, "data_depend": true, "incompatible": true}, rules)
	// chatdb migrate lint judges as the Atlas CLI does with this file; an
	// analyzer atlas.hcl does not configure only warns there.
	for name, isError := range migration.LintRules {
		require.Equal(t, rules[name], isError, "analyzer %s", name)
	}

	for name, dir := range map[string]string{"local": "postgres", "ci": "postgres", "sqlite": "sqlite"} {
		env, ok := envs[name]
		require.True(t, ok, "env %q", name)
		for _, attr := range []string{"src", "url", "dev"} {
			require.Contains(t, env.Body.Attributes, attr, "env %q", name)
		}
		var migration *hclsyntax.Block
		for _, b := range env.Body.Blocks {
			if b.Type == "migration" {
				migration = b
			}
		}
		require.NotNil(t, migration, "env %q has a migration block", name)
		v, diags := migration.Body.Attributes["dir"].Expr.Value(nil)
		require.False(t, diags.HasErrors(), diags.Error())
		u := v.AsString()
		require.Equal(t, "file://migrations/"+dir, u)
		require.FileExists(t, filepath.Join("..", "..", strings.TrimPrefix(u, "file://"), "atlas.sum"))
	}
}
