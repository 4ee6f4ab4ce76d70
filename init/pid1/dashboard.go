package pid1

import (
	"fmt"
	"maps"
	"slices"
	"strings"
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

// statusLines is the box's state, one line each: the status command prints
// it and the dashboard draws it.
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

// dashboardScreen is the whole screen: status, the last log lines, a hint.
func (b *box) dashboardScreen() string {
	var s strings.Builder
	s.WriteString("\x1b[H\x1b[2J") // home, clear
	for _, l := range b.statusLines() {
		s.WriteString(l + "\n")
	}
	s.WriteString("\nlog:\n")
	for _, l := range b.console.last(dashboardLogLines) {
		s.WriteString("  " + l + "\n")
	}
	s.WriteString("\npress Enter for the command prompt\n")
	return s.String()
}

// dashboard shows the status screen until stop is closed, redrawing when it
// changes but at most every dashboardEvery. While it is up, log lines go to
// the log (and its last lines to the screen) instead of scrolling past.
func (b *box) dashboard(stop <-chan struct{}) {
	b.console.setQuiet(true)
	defer b.console.setQuiet(false)
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
