package pid1

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Version is relaybox's version, set by the image build.
var Version = "dev"

// The dashboard redraws at most this often, and only when something it
// shows changed: an IPMI serial-over-LAN line is slow and shared.
const dashboardEvery = 5 * time.Second

// dashboardLogLines is how many of the last log lines the dashboard shows.
const dashboardLogLines = 8

// statusLines is the box's state, one line each: the dashboard draws it and
// the shell reads it in statusFile.
func (b *box) statusLines() []string {
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	host, _ := hostnameNow()
	add("relaybox %s on %s, up %s", Version, host, uptime())
	if b.net != nil {
		links, err := b.net.Links()
		if err != nil {
			add("links: %v", err)
		}
		for _, l := range links {
			add("link %s", l)
		}
	}
	add("%s", b.xdpReport())
	if b.xdp != nil {
		counters, err := b.xdp.Counters()
		if err != nil {
			add("xdp counters: %v", err)
		}
		for _, class := range slices.Sorted(maps.Keys(counters)) {
			c := counters[class]
			add("xdp %-12s packets %d bytes %d", class, c.Packets, c.Bytes)
		}
		// What the kernel path did with them: only reasons seen so far,
		// or the screen would be mostly zeros.
		reasons, err := b.xdp.Reasons()
		if err != nil {
			add("xdp reasons: %v", err)
		}
		for _, r := range slices.Sorted(maps.Keys(reasons)) {
			if c := reasons[r]; c.Packets > 0 {
				add("xdp %-7s %-20s packets %d bytes %d", r.Verdict(), r, c.Packets, c.Bytes)
			}
		}
	}
	switch {
	case b.relay != nil:
		s := b.relay.Status()
		add("relay pid %d restarts %d", s.PID, s.Restarts)
	case b.relayHeld != "":
		add("relay not started: %s", b.relayHeld)
	default:
		add("relay not started yet")
	}
	return lines
}

// uptime is the time since boot, to the minute so that the dashboard does
// not redraw every second for it.
func uptime() string {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return "?"
	}
	return (time.Duration(si.Uptime) * time.Second).Truncate(time.Minute).String()
}

func hostnameNow() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Nodename[:]), nil
}

// keyHint is the dashboard's last line, and what a box without the
// dashboard says once it serves: how to get further.
const keyHint = "press any key for a shell (relay status, the log, poweroff, reboot)"

// dashboardScreen is the whole screen: status, the last log lines, a hint.
func (b *box) dashboardScreen() string {
	var s strings.Builder
	s.WriteString(clearScreen)
	for _, l := range b.statusLines() {
		s.WriteString(l + "\n")
	}
	s.WriteString("\nlog:\n")
	for _, l := range b.console.last(dashboardLogLines) {
		s.WriteString("  " + l + "\n")
	}
	s.WriteString("\n" + keyHint + "\n")
	return s.String()
}

// clearScreen homes the cursor and clears the screen.
const clearScreen = "\x1b[H\x1b[2J"

// dashboard shows the status screen until stop is closed, redrawing when it
// changes but at most every dashboardEvery.
func (b *box) dashboard(stop <-chan struct{}) {
	drawn := ""
	for {
		if screen := b.dashboardScreen(); screen != drawn {
			b.console.Show(screen)
			drawn = screen
		}
		select {
		case <-stop:
			return
		case <-time.After(dashboardEvery):
		}
	}
}

// screen says who has the console: the log scrolling by, the status
// screen, or a shell. While the dashboard or a shell has it, log lines go to
// the log (the ring and logFile) instead of scrolling past.
type screen struct {
	mu        sync.Mutex
	dashboard bool // the status screen is wanted: the relay served and the config asks for it
	shell     bool // a shell is open on the console
	down      bool // the box is going down: the log is shown over anything
	// stop and done belong to the running dashboard, nil when none runs.
	stop, done chan struct{}
}

// wantDashboard turns the status screen on or off; it shows whenever no
// shell is open.
func (b *box) wantDashboard(on bool) {
	b.screen.mu.Lock()
	defer b.screen.mu.Unlock()
	b.screen.dashboard = on
	b.arrangeScreen()
}

// shellOpen says a shell opens on the console (the dashboard goes, the log
// stays quiet) or has closed (the dashboard comes back, if wanted). It
// returns whether the dashboard is wanted.
func (b *box) shellOpen(open bool) (dashboard bool) {
	b.screen.mu.Lock()
	defer b.screen.mu.Unlock()
	b.screen.shell = open
	b.arrangeScreen()
	return b.screen.dashboard
}

// screenDown hands the screen back to the log for good: the box is going
// down and the operator should see it do so.
func (b *box) screenDown() {
	b.screen.mu.Lock()
	defer b.screen.mu.Unlock()
	b.screen.down = true
	b.arrangeScreen()
}

// dashboardUp says whether the status screen is up.
func (b *box) dashboardUp() bool {
	b.screen.mu.Lock()
	defer b.screen.mu.Unlock()
	return b.screen.stop != nil
}

// arrangeScreen starts or stops the dashboard and quiets the log to match
// the screen's state. The caller holds b.screen.mu.
func (b *box) arrangeScreen() {
	s := &b.screen
	up := s.dashboard && !s.shell && !s.down
	quiet := !s.down && (up || s.shell)
	if quiet {
		b.console.setQuiet(true)
	}
	switch {
	case up && s.stop == nil:
		stop, done := make(chan struct{}), make(chan struct{})
		s.stop, s.done = stop, done
		safeGo("dashboard", func() {
			defer close(done)
			b.dashboard(stop)
		})
	case !up && s.stop != nil:
		close(s.stop)
		<-s.done
		s.stop, s.done = nil, nil
	}
	if !quiet {
		b.console.setQuiet(false)
	}
}
