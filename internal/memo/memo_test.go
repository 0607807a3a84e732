package memo_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/raas-dev/raas/internal/memo"
)

func TestGet(t *testing.T) {
	var m memo.Map[string, int]
	var calls atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			v, err := m.Get("a", func() (int, error) { calls.Add(1); return 7, nil })
			if v != 7 || err != nil {
				t.Errorf("Get = %d, %v", v, err)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("computed %d times, want once", n)
	}
	boom := errors.New("boom")
	for range 2 {
		if _, err := m.Get("b", func() (int, error) { calls.Add(1); return 0, boom }); !errors.Is(err, boom) {
			t.Errorf("err = %v", err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("an error was computed again: %d calls", n)
	}
}
