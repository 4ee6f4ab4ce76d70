// Command relay is relaybox's TURN relay (RFC 8656 over UDP). On the
// appliance PID 1 starts and supervises it; it also runs as a plain program
// on any Linux host:
//
//	relay --listen 0.0.0.0:3478 --listen [::]:3478 --realm turn.example.com --auth-secret-file /etc/relaybox/secrets
//	relay --config /etc/relaybox/relaybox.conf
//	relay --xdp eth0 [--xdp-mode auto|native|generic|off] ...
//	relay status [--control PATH] [--limit N] [--json]
//
// With --xdp the relay loads the XDP program, attaches it to the named
// interfaces and writes its channel bindings into the program's maps, so
// the kernel relays their ChannelData; it detaches when it stops. On the
// appliance init attaches the program and starts the relay with
// --xdp-maps /sys/fs/bpf/relaybox, the maps it pinned.
//
// `relay -h` lists every key; relay/relaybox.conf.example explains them.
// The relay logs to stderr, re-reads its auth-secret-file on SIGHUP and
// stops cleanly (exit 0) on SIGTERM or SIGINT.
//
// Readiness: if the environment variable RELAYBOX_READY_FD names an inherited
// file descriptor, the relay writes one line to it once every socket is open,
//
//	READY <addr> [<addr>...]
//
// with the listen addresses bound (the real port where --listen asked for
// port 0), then closes it. A supervisor that reads EOF without that line
// knows the start failed; the reason is on stderr.
package main

import (
	"context"
	"encoding/json"
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
	"time"

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
	if len(args) > 0 && args[0] == "status" {
		return status(args[1:], stdout)
	}
	cfg, err := relay.ParseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: relay [flags]\n       relay status [--control PATH] [--limit N] [--json]\n\nServes TURN (and STUN) on UDP. Flags:\n\n")
		var c relay.Config
		fs := relay.NewFlagSet(&c)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w (relay -h lists the flags)", err)
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

	s, err := relay.NewServer(cfg, relay.Options{
		Log: log,
		Ready: func(addrs []netip.AddrPort) {
			if ready == nil {
				return
			}
			// The relay is serving: a supervisor that stopped listening
			// is no reason to stop, so a failed write is only logged.
			if err := notifyReady(ready, addrs); err != nil {
				log.Error("readiness notification failed", "fd", ready.Fd(), "err", err)
			}
		},
	})
	if err != nil {
		return err
	}

	// SIGHUP re-reads the secrets file. Set up before serving, so that a
	// SIGHUP right after READY does not kill the relay.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, unix.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if _, err := s.ReloadSecrets(); err != nil {
					log.Error("SIGHUP: secrets not reloaded; the old ones stay in use", "err", err)
				}
			}
		}
	}()
	return s.Run(ctx)
}

// status is `relay status`: it asks the running relay through its control
// socket and prints the answer.
func status(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("relay status", flag.ContinueOnError)
	fs.SetOutput(stdout)
	path := fs.String("control", relay.DefaultControl, "`path` of the relay's control socket")
	limit := fs.Int("limit", 100, "list at most `N` allocations and bindings")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	resp, err := relay.Control(*path, relay.ControlRequest{Command: "status", Limit: *limit})
	if err != nil {
		return err
	}
	if resp.Status == nil {
		return errors.New("control socket: no status in the answer")
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp.Status)
	}
	return resp.Status.WriteText(stdout, time.Now())
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
