package pid1

import (
	"os"
	"os/exec"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// A launcher starts a command and reports its exit status on the channel.
type launcher interface {
	start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error)
}

// reaper is PID 1's one caller of wait: orphans re-parented to init are
// reaped and forgotten, and the exit status of a process init started goes
// to whoever started it. A second caller of wait (exec.Cmd.Wait) would race
// with the orphan reaping and lose statuses.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
}

func newReaper() *reaper {
	r := &reaper{waiters: map[int]chan unix.WaitStatus{}}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGCHLD)
	safeGo("reaper", func() {
		for range sigc {
			r.reap()
		}
	})
	return r
}

// start holds the lock across fork and registration, so a child that
// exits at once is still delivered to its waiter, not taken for an orphan.
func (r *reaper) start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := make(chan unix.WaitStatus, 1)
	r.waiters[cmd.Process.Pid] = c
	return c, nil
}

// reap collects every child that has exited. SIGCHLD coalesces, so one
// signal may stand for many exits.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if c, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			c <- ws
		}
	}
}

// directLauncher waits for each child on its own; for a process that is
// not PID 1 (tests), where no reaper owns wait.
type directLauncher struct{}

func (directLauncher) start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(cmd.Process.Pid, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		c <- ws
	}()
	return c, nil
}
