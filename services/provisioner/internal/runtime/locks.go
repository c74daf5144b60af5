package runtime

import "sync"

// nameLocks serializes the commands of one runner name within a replica, so
// that two deliveries of a create (or a create and a delete) never
// interleave: the second sees what the first made. Across replicas the
// stream runtime's claim keeps one command with one consumer; two commands
// for one name at once is a scheduler bug that the health checks (docs/design.md §7)
// repair (a runner that never comes online is deleted).
type nameLocks struct {
	mu    sync.Mutex
	locks map[string]*nameLock
}

type nameLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks name and returns its unlock.
func (l *nameLocks) lock(name string) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*nameLock{}
	}
	nl, ok := l.locks[name]
	if !ok {
		nl = &nameLock{}
		l.locks[name] = nl
	}
	nl.refs++
	l.mu.Unlock()

	nl.mu.Lock()
	return func() {
		nl.mu.Unlock()
		l.mu.Lock()
		nl.refs--
		if nl.refs == 0 {
			delete(l.locks, name)
		}
		l.mu.Unlock()
	}
}
