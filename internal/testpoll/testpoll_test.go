package testpoll_test

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/internal/testpoll"
)

// recorder is a testing.TB that records Fatalf instead of failing the test.
type recorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls Until on a recorder in its own goroutine (Fatalf ends it) and
// returns the recorded failure, "" if none.
func run(t *testing.T, timeout, interval time.Duration, f func() error) string {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testpoll.Until(r, timeout, interval, f)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal
}

func TestUntil(t *testing.T) {
	for _, tc := range []struct {
		name      string
		okAfter   int // calls before f returns nil; -1: never
		wantFatal bool
	}{
		{"at once", 0, false},
		{"after retries", 3, false},
		{"never", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			fatal := run(t, 100*time.Millisecond, time.Millisecond, func() error {
				calls++
				if tc.okAfter >= 0 && calls > tc.okAfter {
					return nil
				}
				return errors.New("not yet")
			})
			if got := fatal != ""; got != tc.wantFatal {
				t.Fatalf("fatal = %q; want fatal %v", fatal, tc.wantFatal)
			}
			if tc.wantFatal {
				if want := "after 100ms: not yet"; fatal != want {
					t.Errorf("fatal = %q; want %q", fatal, want)
				}
				if calls < 2 {
					t.Errorf("f called %d times before the timeout; want retries", calls)
				}
				return
			}
			if calls != tc.okAfter+1 {
				t.Errorf("f called %d times; want %d", calls, tc.okAfter+1)
			}
		})
	}
}

// TestNotImportedByProduction: only _test.go files and test-support
// packages (package name ending in "test") import testpoll.
func TestNotImportedByProduction(t *testing.T) {
	const path = "github.com/custodian/custodian/internal/testpoll"
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		if strings.HasSuffix(f.Name.Name, "test") || f.Name.Name == "testpoll" {
			return nil
		}
		for _, imp := range f.Imports {
			if v, _ := strconv.Unquote(imp.Path.Value); v == path {
				t.Errorf("%s (package %s) imports %s", p, f.Name.Name, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
