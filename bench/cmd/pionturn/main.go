// Command pionturn is the pion/turn server relaybox's benchmarks compare
// with: pion/turn's server API (the module version go.mod pins) set up as
// its own examples do, with TURN REST credentials, a relay port range, and
// one SO_REUSEPORT socket per core so that it uses every core, as coturn
// does with relay-threads. It runs until SIGTERM or SIGINT.
//
//	pionturn --listen 198.18.1.2:3478 --relay-ip 198.18.1.2 --port-range 40000-59999 --realm bench --auth-secret S
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "pionturn: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("pionturn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "0.0.0.0:3478", "UDP `ADDR:PORT` to serve TURN on")
	relayIP := fs.String("relay-ip", "", "`IP` of relayed addresses (required)")
	ports := fs.String("port-range", "49152-65535", "relay ports `MIN-MAX`")
	realm := fs.String("realm", "pion", "`realm` of the challenges")
	secret := fs.String("auth-secret", "", "TURN REST shared `secret` (required)")
	sockets := fs.Int("sockets", runtime.NumCPU(), "SO_REUSEPORT sockets on the listen address, each read by its own goroutine")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*relayIP)
	if err != nil {
		return fmt.Errorf("--relay-ip %q: %w", *relayIP, err)
	}
	lo, hi, err := parseRange(*ports)
	if err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("--auth-secret is required")
	}
	if *sockets < 1 {
		return fmt.Errorf("--sockets %d: want at least 1", *sockets)
	}

	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	loggers := logging.NewDefaultLoggerFactory()
	loggers.DefaultLogLevel = logging.LogLevelWarn
	cfg := turn.ServerConfig{
		Realm:         *realm,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(*secret, loggers.NewLogger("auth")),
		LoggerFactory: loggers,
	}
	for range *sockets {
		c, err := lc.ListenPacket(context.Background(), "udp4", *listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", *listen, err)
		}
		cfg.PacketConnConfigs = append(cfg.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: c,
			RelayAddressGenerator: &turn.RelayAddressGeneratorPortRange{
				RelayAddress: net.IP(ip.AsSlice()),
				Address:      ip.String(),
				MinPort:      lo,
				MaxPort:      hi,
			},
		})
	}
	s, err := turn.NewServer(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	<-ctx.Done()
	return s.Close()
}

func parseRange(s string) (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(s, "-")
	x, errA := strconv.ParseUint(a, 10, 16)
	y, errB := strconv.ParseUint(b, 10, 16)
	if !ok || errA != nil || errB != nil || x == 0 || x > y {
		return 0, 0, fmt.Errorf("--port-range %q: want MIN-MAX, 1 <= MIN <= MAX <= 65535", s)
	}
	return uint16(x), uint16(y), nil
}
