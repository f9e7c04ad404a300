package migration_test

import (
	"fmt"
	"net/url"
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

// TestAtlasHCLFreshCheckout: without DATABASE_URL or ATLAS_DEV_URL, as on a
// fresh checkout, the local and ci envs use databases on the local server
// that the steps atlas.hcl and the README document create, and each variable
// overrides its URL.
func TestAtlasHCLFreshCheckout(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "..", "atlas.hcl"))
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	f, diags := hclsyntax.ParseConfig(src, "atlas.hcl", hcl.InitialPos)
	require.False(t, diags.HasErrors(), diags.Error())
	body := f.Body.(*hclsyntax.Body)

	vars := map[string]string{} // variable name: the environment variable its default reads
	locals := map[string]hclsyntax.Expression{}
	envURLs := map[string]hclsyntax.Expression{}
	for _, b := range body.Blocks {
		switch b.Type {
		case "variable":
			call, ok := b.Body.Attributes["default"].Expr.(*hclsyntax.FunctionCallExpr)
			require.True(t, ok, "variable %s: default is getenv(...)", b.Labels[0])
			require.Equal(t, "getenv", call.Name)
			v, diags := call.Args[0].Value(nil)
			require.False(t, diags.HasErrors(), diags.Error())
			vars[b.Labels[0]] = v.AsString()
		case "locals":
			for name, a := range b.Body.Attributes {
				locals[name] = a.Expr
			}
		case "env":
			envURLs[b.Labels[0]] = b.Body.Attributes["url"].Expr
		}
	}
	require.Equal(t, map[string]string{"url": "DATABASE_URL", "dev_url": "ATLAS_DEV_URL"}, vars)

	// fallback checks that local name is `var.v != "" ? var.v : "URL"` and
	// returns URL.
	fallback := func(name, v string) *url.URL {
		t.Helper()
		c, ok := locals[name].(*hclsyntax.ConditionalExpr)
		require.True(t, ok, "local.%s: var.%s, else a default", name, v)
		require.Equal(t, []string{"var." + v}, traversals(c.Condition))
		require.Equal(t, []string{"var." + v}, traversals(c.TrueResult))
		d, diags := c.FalseResult.Value(nil)
		require.False(t, diags.HasErrors(), diags.Error())
		u, err := url.Parse(d.AsString())
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:5432", u.Host, "local.%s: the local server", name)
		return u
	}
	for _, u := range []*url.URL{fallback("url", "url"), fallback("pg_dev", "dev_url")} {
		step := fmt.Sprintf("createdb -h %s -U %s %s", u.Hostname(), u.User.Username(), strings.TrimPrefix(u.Path, "/"))
		require.True(t, strings.Contains(string(src), "#   "+step+"\n"), "atlas.hcl documents %q", step)
		require.True(t, strings.Contains(string(readme), step), "the README documents %q", step)
	}
	for _, env := range []string{"local", "ci"} {
		require.Equal(t, []string{"local.url"}, traversals(envURLs[env]), "env %q", env)
	}
}

// traversals names the variables expr refers to, such as "var.url".
func traversals(expr hclsyntax.Expression) []string {
	var names []string
	for _, tr := range expr.Variables() {
		name := tr.RootName()
		for _, step := range tr[1:] {
			if a, ok := step.(hcl.TraverseAttr); ok {
				name += "." + a.Name
			}
		}
		names = append(names, name)
	}
	return names
}
