package testenv

import (
	"context"
	"sync"

	"k8s.io/client-go/rest"
)

// Warnings records the warnings an API server sends back, for tests that must see none.
type Warnings struct {
	mu   sync.Mutex
	list []string
}

// RecordWarnings returns a copy of cfg whose clients send the API server's warnings to
// the returned recorder instead of the log.
func RecordWarnings(cfg *rest.Config) (*rest.Config, *Warnings) {
	w := &Warnings{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = nil
	cfg.WarningHandlerWithContext = w
	return cfg, w
}

// HandleWarningHeaderWithContext implements rest.WarningHandlerWithContext.
func (w *Warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// Take returns the warnings recorded so far and forgets them.
func (w *Warnings) Take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.list
	w.list = nil
	return list
}

var _ rest.WarningHandlerWithContext = (*Warnings)(nil)
