package pid1

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReaperReapsOrphans runs the reaper in a child process that is a
// subreaper (as PID 1 is for the whole box): a shell it starts leaves a
// background process behind and exits; the reaper must deliver the shell's
// status to its starter and reap the orphan when it exits, leaving no
// zombie. In a child process because wait4(-1) in the test process would
// take other tests' children.
func TestReaperReapsOrphans(t *testing.T) {
	if os.Getenv("RELAYBOX_REAPER_CHILD") == "1" {
		reaperChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReaperReapsOrphans$")
	cmd.Env = append(os.Environ(), "RELAYBOX_REAPER_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("reaper child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "REAPER OK") {
		t.Fatalf("reaper child did not finish:\n%s", out)
	}
}

func reaperChild() {
	fail := func(format string, args ...any) {
		os.Stderr.WriteString("FAIL: " + strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
		os.Exit(1)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fail("become subreaper: %v", err)
	}
	r := newReaper()
	// The orphan outlives the shell by 200ms, then is re-parented to us.
	exited, err := r.start(exec.Command("/bin/sh", "-c", "sleep 0.2 & exit 3"))
	if err != nil {
		fail("start: %v", err)
	}
	select {
	case ws := <-exited:
		if !ws.Exited() || ws.ExitStatus() != 3 {
			fail("shell status %s, want exit status 3", describeExit(ws))
		}
	case <-time.After(10 * time.Second):
		fail("shell's exit was never delivered")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		kids := children()
		if len(kids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			fail("children left after the orphan exited: %v", kids)
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Stdout.WriteString("REAPER OK\n")
	os.Exit(0)
}

// children lists this process's children (zombies included) as "pid state".
func children() []string {
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
		s := string(b)
		rest := s[strings.LastIndexByte(s, ')')+2:]
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == self {
			kids = append(kids, strings.Fields(s)[0]+" "+f[0])
		}
	}
	return kids
}
