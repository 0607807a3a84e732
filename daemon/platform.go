package daemon

import "github.com/raas-dev/raas/schema"

// Platform returns the platform config of the newest good revision, or nil before the
// first one.
func (l *Loop) Platform() *schema.Platform {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastGood == nil || l.lastGood.render == nil {
		return nil
	}
	return l.lastGood.render.Repo.Platform
}
