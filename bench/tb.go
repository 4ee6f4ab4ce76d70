package bench

import (
	"errors"
	"fmt"
	"log"
	"sync"
	"testing"
)

// harness lets the benchmark, a program, use netcfg/nstest, the project's one
// namespace helper, whose functions take a testing.TB: Fatalf panics with
// an error that catch turns back into one, and Cleanup collects what
// cleanup runs, last first. Only the methods nstest calls are implemented;
// the embedded nil interface is there because testing.TB cannot be
// implemented otherwise.
type harness struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	log      *log.Logger
}

// fatal is the panic value of harness.Fatalf.
type fatal struct{ err error }

func newHarness(l *log.Logger) *harness { return &harness{log: l} }

func (h *harness) Helper() {}

func (h *harness) Fatalf(format string, args ...any) {
	panic(fatal{fmt.Errorf(format, args...)})
}

func (h *harness) Fatal(args ...any) { panic(fatal{errors.New(fmt.Sprint(args...))}) }

// Skip is what nstest.RequireRoot calls when not root.
func (h *harness) Skip(args ...any) { panic(fatal{errors.New(fmt.Sprint(args...))}) }

func (h *harness) Errorf(format string, args ...any) { h.log.Printf("error: "+format, args...) }

func (h *harness) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

// cleanup runs the cleanups registered so far, last first.
func (h *harness) cleanup() {
	h.mu.Lock()
	fs := h.cleanups
	h.cleanups = nil
	h.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					h.log.Printf("cleanup: %v", r)
				}
			}()
			fs[i]()
		}()
	}
}

// catch runs f and returns the error of a Fatalf inside it, if any.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			ft, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = ft.err
		}
	}()
	f()
	return nil
}
