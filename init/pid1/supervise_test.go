package pid1

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"golang.org/x/sys/unix"
)

// buildRelay builds the real relay binary for the supervisor to run.
func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relay")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/relaybox/relaybox/relay/cmd/relay").CombinedOutput()
	if err != nil {
		t.Fatalf("build relay: %v\n%s", err, out)
	}
	return bin
}

// logLines collects what a Service logs, for the test to wait on.
type logLines struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

func newLogLines() *logLines { return &logLines{added: make(chan struct{}, 1)} }

func (l *logLines) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
}

func (l *logLines) logf(format string, args ...any) { l.add(fmt.Sprintf(format, args...)) }

// waitMatch waits for the n-th line (counting from 1) matching re.
func (l *logLines) waitMatch(t *testing.T, re *regexp.Regexp, n int) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		seen := 0
		for _, line := range l.lines {
			if re.MatchString(line) {
				if seen++; seen == n {
					l.mu.Unlock()
					return line
				}
			}
		}
		all := strings.Join(l.lines, "\n")
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no line %d matching %q; log:\n%s", n, re, all)
		}
	}
}

// TestSupervisorRestartsRelay kills the real relay twice and sees the
// supervisor restart it each time, the backoff doubling in the log, and the
// relay answer STUN again after each restart.
func TestSupervisorRestartsRelay(t *testing.T) {
	bin := buildRelay(t)
	log := newLogLines()
	ready := make(chan []string, 4)
	s := &Service{
		Name:        "relay",
		Path:        bin,
		Args:        []string{"--listen=127.0.0.1:0"},
		Output:      func(line string) { log.add("relay: " + line) },
		Logf:        log.logf,
		Ready:       func(addrs []string) { ready <- addrs },
		MinBackoff:  100 * time.Millisecond,
		MaxBackoff:  time.Second,
		StopTimeout: 5 * time.Second,
		launcher:    directLauncher{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()

	waitServing := func() {
		t.Helper()
		select {
		case addrs := <-ready:
			if len(addrs) != 1 {
				t.Fatalf("ready addresses %q, want one", addrs)
			}
			if err := stunBinding(addrs[0]); err != nil {
				t.Fatalf("relay at %s after (re)start: %v", addrs[0], err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("relay never reported ready")
		}
	}
	waitServing()
	for i, wantBackoff := range []string{"100ms", "200ms"} {
		pid := s.Status().PID
		if pid == 0 {
			t.Fatal("Status().PID = 0 while the relay runs")
		}
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`^relay exited \(killed by killed\) after \S+; restarting in ` + wantBackoff + `$`)
		log.waitMatch(t, re, 1)
		waitServing()
		if got := s.Status().Restarts; got != i+1 {
			t.Errorf("Status().Restarts = %d, want %d", got, i+1)
		}
	}

	cancel()
	<-done
	log.waitMatch(t, regexp.MustCompile(`^relay stopped \(exit status 0\)$`), 1)
	if pid := s.Status().PID; pid != 0 {
		t.Errorf("Status().PID = %d after stop, want 0", pid)
	}
}

// TestSupervisorKillsStuckProgram: a program that ignores SIGTERM is killed
// after StopTimeout.
func TestSupervisorKillsStuckProgram(t *testing.T) {
	log := newLogLines()
	s := &Service{
		Name:        "stuck",
		Path:        "/bin/sh",
		Args:        []string{"-c", `trap "" TERM; echo started; while :; do sleep 1; done`},
		Output:      func(line string) { log.add("stuck: " + line) },
		Logf:        log.logf,
		Ready:       func([]string) {},
		MinBackoff:  time.Second,
		MaxBackoff:  time.Second,
		StopTimeout: 300 * time.Millisecond,
		launcher:    directLauncher{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	log.waitMatch(t, regexp.MustCompile(`^stuck: started$`), 1)
	cancel()
	<-done
	log.waitMatch(t, regexp.MustCompile(`^stuck did not stop within 300ms; killing it$`), 1)
}

func stunBinding(addr string) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	if _, err := conn.Write(req.Raw); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	res := new(stun.Message)
	if err := stun.Decode(buf[:n], res); err != nil {
		return err
	}
	if res.Type != stun.BindingSuccess || res.TransactionID != req.TransactionID {
		return fmt.Errorf("answer %v, want Binding success", res)
	}
	return nil
}
