package relay

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The control socket is a unix stream socket (mode 0600: root's) that
// speaks JSON, one object per line each way:
//
//	→ {"command":"status","limit":100}
//	← {"status":{...}}             the Status, with at most limit allocations and bindings listed (default 100)
//	→ {"command":"reload"}
//	← {"reload":{"secrets":3}}     auth-secret-file read again, as on SIGHUP
//	→ {"command":"frobnicate"}
//	← {"error":"unknown command \"frobnicate\": want status or reload"}
//
// A connection may carry several requests; it is closed after
// controlIdleTimeout without one.

// ControlRequest is one request on the control socket.
type ControlRequest struct {
	Command string `json:"command"`
	Limit   int    `json:"limit,omitempty"`
}

// ControlResponse is one answer on the control socket: exactly one field set.
type ControlResponse struct {
	Status *Status       `json:"status,omitempty"`
	Reload *ReloadResult `json:"reload,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// ReloadResult says what a reload did.
type ReloadResult struct {
	Secrets int `json:"secrets"`
}

const (
	controlIdleTimeout = 10 * time.Second
	defaultStatusLimit = 100
	maxControlConns    = 16
)

// serveControl opens the control socket and serves it until stop is called.
func (s *Server) serveControl() (stop func(), err error) {
	path := s.cfg.Control
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control %s: %w", path, err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control %s: %w: choose --control with a writable path, or --control= for none", path, err)
	}
	l.SetUnlinkOnClose(true)
	// Root's only. (A umask around bind would close the moment's window
	// but is process-wide, and would change files made meanwhile.)
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control %s: %w", path, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if len(conns) >= maxControlConns {
				mu.Unlock()
				c.Close()
				continue
			}
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				s.serveControlConn(c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	s.log.Info("control socket", "path", path)
	return func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}, nil
}

// removeStaleSocket removes a socket left by a relay that did not stop
// cleanly; a socket someone answers on is another relay's, and an error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control %s: exists and is not a socket; remove it or choose another --control", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("control %s: another relay is answering on it; stop it or choose another --control", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("control %s: remove stale socket: %w", path, err)
	}
	return nil
}

func (s *Server) serveControlConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	enc := json.NewEncoder(c)
	for {
		c.SetDeadline(time.Now().Add(controlIdleTimeout))
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			return
		}
		var req ControlRequest
		var resp ControlResponse
		if err := json.Unmarshal(line, &req); err != nil {
			resp.Error = fmt.Sprintf("want one JSON object per line such as {\"command\":\"status\"}: %v", err)
		} else {
			resp = s.control(req)
		}
		if enc.Encode(resp) != nil {
			return
		}
	}
}

func (s *Server) control(req ControlRequest) ControlResponse {
	switch req.Command {
	case "status":
		limit := req.Limit
		if limit <= 0 {
			limit = defaultStatusLimit
		}
		st := s.Status(limit)
		return ControlResponse{Status: &st}
	case "reload":
		n, err := s.ReloadSecrets()
		if err != nil {
			return ControlResponse{Error: err.Error()}
		}
		return ControlResponse{Reload: &ReloadResult{Secrets: n}}
	}
	return ControlResponse{Error: fmt.Sprintf("unknown command %q: want status or reload", req.Command)}
}

// Control sends req to the relay's control socket at path and returns the
// answer; an answer with an error is returned as an error.
func Control(path string, req ControlRequest) (ControlResponse, error) {
	var resp ControlResponse
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return resp, fmt.Errorf("control socket %s: %w (is the relay running? --control names another socket)", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return resp, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return resp, fmt.Errorf("control socket %s: %w", path, err)
	}
	if resp.Error != "" {
		return resp, fmt.Errorf("relay: %s", resp.Error)
	}
	return resp, nil
}
