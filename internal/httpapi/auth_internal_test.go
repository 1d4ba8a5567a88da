package httpapi

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// packageFiles returns the package's Go files, tests left out.
func packageFiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.go") {
			files = append(files, f)
		}
	}
	if len(files) < 2 {
		t.Fatalf("package files = %v", files)
	}
	return files
}

// Every route other than GET is a command and is registered by handleCommand, which puts the
// cross-origin and admin-token checks in front of it: a command added later cannot forget them.
func TestCommandsRegisteredBehindTheGuard(t *testing.T) {
	for _, name := range packageFiles(t) {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range unguardedRoutes(t, name, src) {
			t.Error(p)
		}
	}
	// The check finds the routes it looks for.
	for _, bad := range []string{
		`func New() { mux.HandleFunc("POST /v1/projections/{name}/rebuild", a.rebuild) }`,
		`func (a *api) register(mux *http.ServeMux) { mux.Handle("DELETE /v1/projections/{name}", h) }`,
		`func (a *api) register(mux *http.ServeMux, verb string) { mux.HandleFunc("POST /v1/projections/{name}/"+verb, h) }`,
	} {
		if len(unguardedRoutes(t, "bad.go", []byte("package httpapi\n"+bad))) == 0 {
			t.Errorf("no unguarded route found in %s", bad)
		}
	}
}

// unguardedRoutes returns the routes the Go source src registers, for a method other than GET,
// outside handleCommand.
func unguardedRoutes(t *testing.T, name string, src []byte) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil || fn.Name.Name == "handleCommand" {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok || len(c.Args) == 0 {
				return true
			}
			sel, ok := c.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			pattern := c.Args[0]
			for {
				b, ok := pattern.(*ast.BinaryExpr)
				if !ok {
					break
				}
				pattern = b.X
			}
			if lit, ok := pattern.(*ast.BasicLit); ok && strings.HasPrefix(lit.Value, `"GET `) {
				return true
			}
			found = append(found, fmt.Sprintf("%s: %s registers a route other than GET outside handleCommand", fset.Position(c.Pos()), fn.Name.Name))
			return true
		})
	}
	return found
}

// The admin token is checked in constant time: tokenMatches compares with
// crypto/subtle.ConstantTimeCompare, and nothing in the package compares the token (or its
// sum) with == or != or a strings or bytes function that stops at the first difference.
func TestTokenComparedInConstantTime(t *testing.T) {
	var srcs [][]byte
	for _, name := range packageFiles(t) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, b)
	}
	for _, p := range timingLeaks(t, srcs...) {
		t.Error(p)
	}
	// The check finds the leaks it looks for.
	for _, bad := range []string{
		`func (a *api) tokenMatches(token string) bool { return token == a.o.AdminToken }`,
		`func (a *api) tokenMatches(token string) bool { sum := sha256.Sum256([]byte(token)); return bytes.Equal(sum[:], a.tokenSum) }`,
		`func (a *api) tokenMatches(token string) bool { return subtle.ConstantTimeCompare([]byte(token), a.tokenSum) == 1 }
		 func (a *api) other(token string) bool { return a.o.AdminToken != token }`,
	} {
		if len(timingLeaks(t, []byte("package httpapi\n"+bad))) == 0 {
			t.Errorf("no leak found in %s", bad)
		}
	}
}

// timingLeaks returns the places in the Go files srcs of the package where the admin token is
// compared in time that depends on its content.
func timingLeaks(t *testing.T, srcs ...[]byte) []string {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	for i, src := range srcs {
		f, err := parser.ParseFile(fset, fmt.Sprintf("file%d.go", i), src, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	secret := map[string]bool{"token": true, "tokenSum": true, "AdminToken": true, "sum": true}
	mentions := func(e ast.Expr) bool {
		found := false
		ast.Inspect(e, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.Ident:
				found = found || secret[x.Name]
			case *ast.SelectorExpr:
				found = found || secret[x.Sel.Name]
			}
			return !found
		})
		return found
	}
	var leaks []string
	constantTime := false
	for _, f := range files {
		inspectTokenUses(fset, f, mentions, &leaks, &constantTime)
	}
	if !constantTime {
		leaks = append(leaks, "tokenMatches does not call subtle.ConstantTimeCompare")
	}
	return leaks
}

// inspectTokenUses adds to leaks the comparisons of the admin token in f, and sets
// constantTime when f's tokenMatches calls subtle.ConstantTimeCompare.
func inspectTokenUses(fset *token.FileSet, f *ast.File, mentions func(ast.Expr) bool, leaks *[]string, constantTime *bool) {
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.FuncDecl:
			if x.Name.Name == "tokenMatches" {
				ast.Inspect(x.Body, func(n ast.Node) bool {
					if isCall(n, "subtle", "ConstantTimeCompare") {
						*constantTime = true
					}
					return true
				})
			}
		case *ast.BinaryExpr:
			if (x.Op == token.EQL || x.Op == token.NEQ) && (mentions(x.X) || mentions(x.Y)) && !harmless(x) {
				*leaks = append(*leaks, fmt.Sprintf("%s: the admin token is compared with %s", fset.Position(x.Pos()), x.Op))
			}
		case *ast.CallExpr:
			for _, fn := range []string{"EqualFold", "Equal", "Compare", "HasPrefix"} {
				if isCall(x, "strings", fn) || isCall(x, "bytes", fn) {
					for _, arg := range x.Args {
						if mentions(arg) {
							*leaks = append(*leaks, fmt.Sprintf("%s: the admin token is compared with %s", fset.Position(x.Pos()), fn))
						}
					}
				}
			}
		}
		return true
	})
}

// isCall reports whether n is a call of pkg.fn.
func isCall(n ast.Node, pkg, fn string) bool {
	c, ok := n.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == fn
}

// harmless reports whether x compares with "" or nil (whether a token is set at all), or
// compares the result of subtle.ConstantTimeCompare.
func harmless(x *ast.BinaryExpr) bool {
	for _, e := range []ast.Expr{x.X, x.Y} {
		if isCall(e, "subtle", "ConstantTimeCompare") {
			return true
		}
		switch v := e.(type) {
		case *ast.BasicLit:
			if v.Value == `""` {
				return true
			}
		case *ast.Ident:
			if v.Name == "nil" {
				return true
			}
		}
	}
	return false
}
