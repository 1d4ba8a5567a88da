package httpapi

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"testing"
)

// The admin token is checked in constant time: tokenMatches compares with
// crypto/subtle.ConstantTimeCompare, and nothing in the package compares the token (or its
// sum) with == or != or a strings or bytes function that stops at the first difference.
func TestTokenComparedInConstantTime(t *testing.T) {
	src, err := os.ReadFile("httpapi.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range timingLeaks(t, src) {
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

// timingLeaks returns the places in the Go source src where the admin token is compared in
// time that depends on its content.
func timingLeaks(t *testing.T, src []byte) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "httpapi.go", src, 0)
	if err != nil {
		t.Fatal(err)
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
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.FuncDecl:
			if x.Name.Name == "tokenMatches" {
				ast.Inspect(x.Body, func(n ast.Node) bool {
					if isCall(n, "subtle", "ConstantTimeCompare") {
						constantTime = true
					}
					return true
				})
			}
		case *ast.BinaryExpr:
			if (x.Op == token.EQL || x.Op == token.NEQ) && (mentions(x.X) || mentions(x.Y)) && !harmless(x) {
				leaks = append(leaks, fmt.Sprintf("%s: the admin token is compared with %s", fset.Position(x.Pos()), x.Op))
			}
		case *ast.CallExpr:
			for _, fn := range []string{"EqualFold", "Equal", "Compare", "HasPrefix"} {
				if isCall(x, "strings", fn) || isCall(x, "bytes", fn) {
					for _, arg := range x.Args {
						if mentions(arg) {
							leaks = append(leaks, fmt.Sprintf("%s: the admin token is compared with %s", fset.Position(x.Pos()), fn))
						}
					}
				}
			}
		}
		return true
	})
	if !constantTime {
		leaks = append(leaks, "tokenMatches does not call subtle.ConstantTimeCompare")
	}
	return leaks
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
