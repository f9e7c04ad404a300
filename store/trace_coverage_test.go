package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryOperationTraced: every exported method of *Store that takes a
// context starts its span first, s.startOp with chatdb.store.<its name>, and
// ends it with the error it returns (defer span.end(&err)). A new operation
// without them fails here.
func TestEveryOperationTraced(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	var checked int
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || !fn.Name.IsExported() || !takesContext(fn) {
				continue
			}
			star, ok := fn.Recv.List[0].Type.(*ast.StarExpr)
			if !ok || star.X.(*ast.Ident).Name != "Store" {
				continue
			}
			checked++
			body := fn.Body.List
			require.GreaterOrEqual(t, len(body), 2, fn.Name.Name)
			start := src(t, fset, name, body[0])
			assert.Contains(t, start, `s.startOp(ctx, "chatdb.store.`+fn.Name.Name+`", `, "%s: the first statement starts its span, named after it", fn.Name.Name)
			assert.Equal(t, "defer span.end(&err)", src(t, fset, name, body[1]), "%s: the second ends it", fn.Name.Name)
		}
	}
	assert.GreaterOrEqual(t, checked, 20, "the operations found")
}

func takesContext(fn *ast.FuncDecl) bool {
	for _, p := range fn.Type.Params.List {
		if sel, ok := p.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Context" {
			return true
		}
	}
	return false
}

func src(t *testing.T, fset *token.FileSet, file string, n ast.Node) string {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	return string(b[fset.Position(n.Pos()).Offset:fset.Position(n.End()).Offset])
}
