package larksecrets

import (
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The package reads top-down: backend.go (Vault's face), then the request layer that parses
// requests and answers them, then the services and the state they own. A service may be used by a
// handler, never the other way round, so nothing below the request layer may use a name declared
// in it: a type, constant, function, method or field that a service needs belongs in the service's
// own file (README, "Where things are").

// inRequestLayer reports whether a file of the package (its base name) is part of the request
// layer: backend.go, the path files, and the two helpers only path handlers call.
func inRequestLayer(file string) bool {
	return file == "backend.go" || strings.HasPrefix(file, "path_") ||
		file == "token_response.go" || file == "http_errors.go"
}

// layerUses type-checks one package made of files (base name -> source) and returns every use, in
// a file outside the request layer, of a name declared in a file of the request layer, as
// "user.go: name (declared in declarer.go)", sorted; and how many names the request layer's own
// files were found to use across files, so a caller can tell the check saw anything at all.
//
// Imports are resolved where the standard importer can (the standard library); a module that it
// cannot find only leaves selections on that module's values unresolved, and those are never names
// of this package, whose files are all checked together.
func layerUses(t *testing.T, files map[string]string) (violations []string, crossUses int) {
	t.Helper()
	fset := token.NewFileSet()
	var parsed []*ast.File
	for name, src := range files {
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		require.NoError(t, err)
		parsed = append(parsed, f)
	}
	conf := types.Config{
		Importer: importer.ForCompiler(fset, "gc", nil),
		Error:    func(error) {}, // unresolved imports (see above); the compiler checks the rest
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	pkg, _ := conf.Check("layers", fset, parsed, info)
	require.NotNil(t, pkg)
	seen := map[string]bool{}
	for id, obj := range info.Uses {
		if obj.Pkg() != pkg || !obj.Pos().IsValid() {
			continue
		}
		// Names declared inside a function are local to its file; methods and fields have no
		// parent scope and count like package-level names.
		if p := obj.Parent(); p != nil && p != pkg.Scope() {
			continue
		}
		user := filepath.Base(fset.Position(id.Pos()).Filename)
		declarer := filepath.Base(fset.Position(obj.Pos()).Filename)
		if user == declarer || !inRequestLayer(declarer) {
			continue
		}
		if inRequestLayer(user) {
			crossUses++
			continue
		}
		v := fmt.Sprintf("%s: %s (declared in %s)", user, obj.Name(), declarer)
		if !seen[v] {
			seen[v] = true
			violations = append(violations, v)
		}
	}
	sort.Strings(violations)
	return violations, crossUses
}

func TestServicesUseNothingOfTheRequestLayer(t *testing.T) {
	matches, err := filepath.Glob("*.go")
	require.NoError(t, err)
	files := map[string]string{}
	for _, m := range matches {
		if strings.HasSuffix(m, "_test.go") {
			continue
		}
		src, err := os.ReadFile(m)
		require.NoError(t, err)
		files[m] = string(src)
	}
	require.Greater(t, len(files), 30)
	violations, crossUses := layerUses(t, files)
	// backend.go registers the paths it finds in the path files: if the check saw none of that, it
	// read nothing and would pass whatever the code did.
	require.Greater(t, crossUses, 10, "the type check resolved no use of the request layer at all")
	require.Empty(t, violations, "a service uses a name of the request layer; move the name into the service's file")
}

// The check itself: a function, a constant, a method and a field of a path file used by a service
// are each found; uses inside the request layer and a service's own names are not.
func TestLayerUsesFindsServicesUsingPathFiles(t *testing.T) {
	files := map[string]string{
		"backend.go": `package p
func Factory() int { return pathThing(nil) + limitOfPath }`,
		"path_thing.go": `package p
const limitOfPath = 3
type answer struct{ Code int }
func (a *answer) status() int { return a.Code }
func pathThing(s *service) int { return helperOfPath(s.n) }
func helperOfPath(n int) int { return n }`,
		"service.go": `package p
import "strings"
type service struct{ n int }
func (s *service) run() int {
	a := &answer{Code: limitOfPath}
	return helperOfPath(s.n) + a.status() + a.Code + len(strings.TrimSpace(" "))
}`,
		"state.go": `package p
type state struct{ service *service }
func (st state) own() int { return st.service.n }`,
	}
	violations, crossUses := layerUses(t, files)
	require.Equal(t, []string{
		"service.go: Code (declared in path_thing.go)",
		"service.go: answer (declared in path_thing.go)",
		"service.go: helperOfPath (declared in path_thing.go)",
		"service.go: limitOfPath (declared in path_thing.go)",
		"service.go: status (declared in path_thing.go)",
	}, violations)
	require.Equal(t, 2, crossUses) // backend.go's pathThing and limitOfPath
}
