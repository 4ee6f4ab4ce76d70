package nstest

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// PollLikeANIC makes dev's receive side in n work as a busy server NIC's
// does: GRO on; NAPI in a kernel thread of its own, so that a poll finds
// the datagrams that queued since the last one (a veth's sender otherwise
// polls after every datagram, and GRO never finds two together); and a GRO
// flush timeout standing for interrupt coalescing, so that what one poll
// joined waits for the next polls to join more to.
func (n *NS) PollLikeANIC(t testing.TB, dev string, flush time.Duration) {
	t.Helper()
	n.MustRun(t, "ethtool", "-K", dev, "gro", "on")
	n.MustRun(t, "sh", "-c", fmt.Sprintf("echo %d > /sys/class/net/%s/gro_flush_timeout", flush.Nanoseconds(), dev))
	if err := n.ThreadedNAPI(dev, true); err != nil {
		t.Fatal(err)
	}
}

// ThreadedNAPI runs dev's receive processing in n in a kernel thread of its
// own (on), or back in the softirq of whoever sends to it (off).
func (n *NS) ThreadedNAPI(dev string, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	if out, err := n.Command("sh", "-c", "echo "+v+" > /sys/class/net/"+dev+"/threaded").CombinedOutput(); err != nil {
		return fmt.Errorf("threaded NAPI %s on %s in %s: %v: %s", v, dev, n.Name, err, out)
	}
	return nil
}

// ThreadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID): an
// in-kernel generator's, with the softirqs that carry its frames charged
// to it when NAPI is not threaded.
func ThreadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("thread CPU time: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}
