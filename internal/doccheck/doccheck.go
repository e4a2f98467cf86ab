// Package doccheck keeps the docs in step with the names users type or see
// (Event reasons, metric names): tests list the names from code and fail when
// a document does not mention one of them.
package doccheck

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// RepoFile is the path of a file relative to the repository root.
func RepoFile(rel string) string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", filepath.FromSlash(rel))
}

// MentionsAll fails t for every name that doc (relative to the repository
// root) does not contain in the form format (e.g. "`%s`" or "| `%s` |").
func MentionsAll(t testing.TB, doc, format string, names ...string) {
	t.Helper()
	raw, err := os.ReadFile(RepoFile(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.Contains(string(raw), strings.ReplaceAll(format, "%s", n)) {
			t.Errorf("%s does not mention %s", doc, n)
		}
	}
}
