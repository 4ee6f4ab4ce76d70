package pid1

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// watchdogDevice is the kernel's first hardware watchdog.
const watchdogDevice = "/dev/watchdog"

// watchdog keeps the hardware watchdog fed: if init hangs, the machine
// resets instead of sitting dead in a rack.
type watchdog struct {
	f    *os.File
	stop chan struct{}
	done chan struct{}
}

// startWatchdog arms the watchdog with timeout and pings it at a third of
// that from its own goroutine. No device (or timeout 0) is not an error:
// many boxes have none, and it is then simply not used.
func startWatchdog(timeout time.Duration, logf func(string, ...any)) *watchdog {
	if timeout == 0 {
		return nil
	}
	f, err := os.OpenFile(watchdogDevice, os.O_WRONLY, 0)
	if err != nil {
		if !os.IsNotExist(err) {
			logf("watchdog: %v", err)
		}
		return nil
	}
	fd := int(f.Fd())
	identity := "watchdog"
	if info, err := unix.IoctlGetWatchdogInfo(fd); err == nil {
		identity = unix.ByteSliceToString(info.Identity[:])
	}
	secs := int(timeout / time.Second)
	if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, secs); err != nil {
		logf("watchdog %s: set timeout %ds: %v; keeping its own", identity, secs, err)
	}
	w := &watchdog{f: f, stop: make(chan struct{}), done: make(chan struct{})}
	every := timeout / 3
	logf("watchdog %s armed: timeout %s, pinged every %s", identity, timeout, every)
	safeGo("watchdog", func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if err := unix.IoctlWatchdogKeepalive(fd); err != nil {
				logf("watchdog: keepalive: %v", err)
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	})
	return w
}

// disarm stops the pings and disarms the watchdog with the magic close
// ('V'), so a clean power off is not cut short by a reset.
func (w *watchdog) disarm() {
	if w == nil {
		return
	}
	close(w.stop)
	<-w.done
	w.f.Write([]byte("V"))
	w.f.Close()
}
