package pid1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ReadyFDEnv names the environment variable through which a supervised
// program learns the descriptor to write its one `READY <addr>...` line to,
// once it serves.
const ReadyFDEnv = "RELAYBOX_READY_FD"

// Service is a long-running program that init keeps alive: restarted when
// it exits, after a backoff that grows while it keeps failing.
type Service struct {
	Name string
	Path string
	Args []string

	// Output receives each line the program writes to stdout or stderr.
	Output func(line string)
	// Logf receives the supervisor's own messages.
	Logf func(format string, args ...any)
	// Ready is called with the addresses the program reports each time it
	// starts serving.
	Ready func(addrs []string)

	MinBackoff, MaxBackoff time.Duration
	// StopTimeout is how long a program has to exit after SIGTERM before
	// it is killed.
	StopTimeout time.Duration

	launcher launcher

	mu       sync.Mutex
	pid      int
	restarts int
}

// stableAfter is how long a run must last for the backoff to start again
// from MinBackoff: a program that served for a while and then crashed is
// restarted quickly.
const stableAfter = 10 * time.Second

// Status is what the console shows about a service.
type Status struct {
	PID      int // 0 while not running
	Restarts int
}

func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{PID: s.pid, Restarts: s.restarts}
}

// Run keeps the program running until ctx is done, then stops it (SIGTERM,
// SIGKILL after StopTimeout) and returns.
func (s *Service) Run(ctx context.Context) {
	backoff := s.MinBackoff
	for {
		started := time.Now()
		ws, err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		ran := time.Since(started).Round(time.Millisecond)
		if ran > stableAfter {
			backoff = s.MinBackoff
		}
		why := describeExit(ws)
		if err != nil {
			why = err.Error()
		}
		s.Logf("%s exited (%s) after %s; restarting in %s", s.Name, why, ran, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.MaxBackoff)
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
	}
}

func (s *Service) runOnce(ctx context.Context) (unix.WaitStatus, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer readyR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return 0, err
	}
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = append(os.Environ(), ReadyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{readyW} // fd 3
	cmd.Stdout, cmd.Stderr = outW, outW
	// Its own process group, so stopping it stops whatever it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	exited, err := s.launcher.start(cmd)
	readyW.Close()
	outW.Close()
	if err != nil {
		outR.Close()
		return 0, fmt.Errorf("start %s: %w", s.Path, err)
	}
	pid := cmd.Process.Pid
	s.mu.Lock()
	s.pid = pid
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pid = 0
		s.mu.Unlock()
	}()

	go s.forwardOutput(outR)
	go s.watchReady(readyR)

	select {
	case ws := <-exited:
		return ws, nil
	case <-ctx.Done():
	}
	s.Logf("stopping %s (pid %d)", s.Name, pid)
	unix.Kill(-pid, unix.SIGTERM)
	select {
	case ws := <-exited:
		s.Logf("%s stopped (%s)", s.Name, describeExit(ws))
		return ws, nil
	case <-time.After(s.StopTimeout):
	}
	s.Logf("%s did not stop within %s; killing it", s.Name, s.StopTimeout)
	unix.Kill(-pid, unix.SIGKILL)
	return <-exited, nil
}

func (s *Service) forwardOutput(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	for sc.Scan() {
		s.Output(sc.Text())
	}
}

// watchReady waits for the program's READY line. A program that exits
// without one simply closes the pipe.
func (s *Service) watchReady(r io.Reader) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != "READY" {
		s.Logf("%s wrote %q to its ready descriptor; want READY <addr>...", s.Name, strings.TrimSpace(line))
		return
	}
	s.Ready(fields[1:])
}

func describeExit(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %v", ws.Signal())
	default:
		return fmt.Sprintf("wait status %#x", uint32(ws))
	}
}
