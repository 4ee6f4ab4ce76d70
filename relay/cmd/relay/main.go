// Command relay is relaybox's STUN/TURN relay. On the appliance PID 1 starts
// and supervises it; it also runs as a plain program on any Linux host:
//
//	relay --listen 0.0.0.0:3478 --listen [::]:3478
//
// It logs to stderr and stops cleanly (exit 0) on SIGTERM or SIGINT.
//
// Readiness: if the environment variable RELAYBOX_READY_FD names an inherited
// file descriptor, the relay writes one line to it once every socket is open,
//
//	READY <addr> [<addr>...]
//
// with the addresses bound (the real port where --listen asked for port 0),
// then closes it. A supervisor that reads EOF without that line knows the
// start failed; the reason is on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/relay"
)

// readyFDEnv names the readiness file descriptor; see the package comment.
const readyFDEnv = "RELAYBOX_READY_FD"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	var cfg relay.Config
	fs := relay.NewFlagSet(&cfg)
	// The flag package would print the error and the whole usage; main
	// prints the error once instead, and -h prints the usage.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: relay [flags]\n\nServes STUN/TURN on UDP. Flags:\n\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return fmt.Errorf("%w (relay -h lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: relay takes only flags (relay -h lists them)", fs.Arg(0))
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ready, err := readyFile(os.Getenv(readyFDEnv))
	if err != nil {
		return err
	}
	if ready != nil {
		// Whatever happens, the supervisor must not wait forever.
		defer ready.Close()
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting", "config", cfg)

	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	// After the first signal, a second one kills the relay the default way,
	// should a clean stop hang.
	context.AfterFunc(ctx, stop)

	return relay.Serve(ctx, cfg, log, func(addrs []netip.AddrPort) {
		if ready == nil {
			return
		}
		// The relay is serving: a supervisor that stopped listening is
		// no reason to stop, so a failed write is only logged.
		if err := notifyReady(ready, addrs); err != nil {
			log.Error("readiness notification failed", "fd", ready.Fd(), "err", err)
		}
	})
}

// readyFile returns the readiness file named by the value of
// RELAYBOX_READY_FD, or nil if it is empty.
func readyFile(env string) (*os.File, error) {
	if env == "" {
		return nil, nil
	}
	os.Unsetenv(readyFDEnv)
	fd, err := strconv.Atoi(env)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: want the number of a file descriptor the relay inherited, 3 or more", readyFDEnv, env)
	}
	// Check now, so a supervisor that forgot to pass the descriptor learns
	// it at once rather than never hearing READY.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("%s=%d: %w: the relay did not inherit that file descriptor", readyFDEnv, fd, err)
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "readiness"), nil
}

// notifyReady writes the READY line for addrs to f and closes f.
func notifyReady(f *os.File, addrs []netip.AddrPort) error {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	_, err := fmt.Fprintf(f, "READY %s\n", strings.Join(s, " "))
	return errors.Join(err, f.Close())
}
