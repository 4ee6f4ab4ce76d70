package relay

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/relaybox/relaybox/relay/auth"
)

// opsRelay is a loopback relay with a control socket, metrics on a free
// port and a secrets file.
func opsRelay(t *testing.T) (r *running, control, secretFile string) {
	t.Helper()
	control = tempControl(t)
	secretFile = filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secretFile, []byte("# first\nfile-secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, []netip.AddrPort{netip.AddrPortFrom(lo4, 0)}, []netip.Addr{lo4}, "127.0.0.0/8")
	cfg.Control = control
	cfg.Metrics = "127.0.0.1:0"
	cfg.AuthSecretFile = secretFile
	return startServer(t, cfg, Options{DataPlane: &recorder{clock: &seqClock{}}}), control, secretFile
}

func TestControlSocket(t *testing.T) {
	r, control, _ := opsRelay(t)
	peer := udpConn(t, nil, netip.AddrPortFrom(lo4, 0))
	go echo(peer)
	tc := newTURNClient(t, udpConn(t, nil, netip.AddrPortFrom(lo4, 0)), r.listen[0], testUser, testPass)
	untilChannelData(t, r, tc, peer.LocalAddr(), "status")

	fi, err := os.Stat(control)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("control socket %s: %v, %v; want a socket with mode 0600", control, fi.Mode(), err)
	}
	resp, err := Control(control, ControlRequest{Command: "status"})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.Status
	client := tc.conn.LocalAddr().String()
	if st == nil || !st.Ready || st.Allocations != 1 || st.Channels != 1 || st.Bindings != 1 || len(st.AllocationList) != 1 ||
		st.AllocationList[0].Client != client || st.AllocationList[0].Username != testUser || len(st.BindingList) != 1 ||
		st.DataPlane.Mode != "recorder" || st.Relayed["channel-to-peer"].Packets == 0 || st.Responses["200"] == 0 ||
		len(st.Listen) != 1 || st.Listen[0] != r.listen[0].String() {
		t.Errorf("status = %+v, want ready, one allocation of %s with one channel, its binding, traffic and the listen address", st, client)
	}
	var text bytes.Buffer
	if err := st.WriteText(&text, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"relay          serving", "allocations    1", "data plane     recorder", "ALLOCATIONS (1 of 1)", client, "BINDINGS (1 of 1)", "channel-to-peer"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text:\n%s\nwant it to contain %q", text.String(), want)
		}
	}

	if _, err := Control(control, ControlRequest{Command: "frobnicate"}); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate": want status or reload`) {
		t.Errorf("unknown command: %v", err)
	}
	// Garbage on the socket gets an error, and the connection goes on.
	c, err := net.Dial("unix", control)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "status please\n{\"command\":\"status\",\"limit\":1}\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	var got []byte
	for bytes.Count(got, []byte("\n")) < 2 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read control answers: %v (got %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	lines := strings.Split(string(got), "\n")
	if !strings.Contains(lines[0], `"error":"want one JSON object per line`) || !strings.HasPrefix(lines[1], `{"status":{`) {
		t.Errorf("answers %q, want an error then a status", got)
	}
}

// TestReloadSecrets rolls a REST secret through the secrets file, by the
// control socket's reload (SIGHUP does the same in the relay command).
func TestReloadSecrets(t *testing.T) {
	r, control, secretFile := opsRelay(t)
	user := auth.RESTUsername(time.Now().Add(time.Hour), "carol")
	try := func(secret string) int {
		rc := newRawClient(t, udpConn(t, nil, netip.AddrPortFrom(lo4, 0)), r.listen[0], user, auth.RESTPassword(secret, user))
		return errorCode(rc.do(stun.MethodAllocate, udpTransport))
	}
	if code := try("file-secret-1"); code != 0 {
		t.Fatalf("Allocate with the file's secret: %d, want success", code)
	}
	os.WriteFile(secretFile, []byte("file-secret-2\n"), 0o600)
	resp, err := Control(control, ControlRequest{Command: "reload"})
	if err != nil || resp.Reload == nil || resp.Reload.Secrets != 3 { // two auth-secret keys and the file's one
		t.Fatalf("reload = %+v, %v; want 3 secrets", resp.Reload, err)
	}
	if code := try("file-secret-2"); code != 0 {
		t.Errorf("Allocate with the new secret after reload: %d, want success", code)
	}
	if code := try("file-secret-1"); code != 401 {
		t.Errorf("Allocate with the removed secret after reload: %d, want 401", code)
	}
	os.WriteFile(secretFile, []byte("# nothing\n"), 0o600)
	if _, err := Control(control, ControlRequest{Command: "reload"}); err == nil || !strings.Contains(err.Error(), "no secret in it") {
		t.Errorf("reload of an empty file = %v, want an error", err)
	}
	if code := try("file-secret-2"); code != 0 {
		t.Errorf("after a failed reload the old secrets stay: Allocate %d, want success", code)
	}
}

func TestControlSocketPath(t *testing.T) {
	control := tempControl(t)
	// A socket file left by a relay that died: replaced.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: control, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	cfg := testConfig(t, []netip.AddrPort{netip.AddrPortFrom(lo4, 0)}, []netip.Addr{lo4})
	cfg.Control = control
	startServer(t, cfg, Options{})
	if _, err := Control(control, ControlRequest{Command: "status"}); err != nil {
		t.Errorf("status after replacing a stale socket: %v", err)
	}
	// A second relay on the same path: refused, and the first keeps it.
	err = Serve(t.Context(), cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "another relay is answering on it") {
		t.Errorf("second relay on %s: %v, want an error", control, err)
	}
	if _, err := Control(control, ControlRequest{Command: "status"}); err != nil {
		t.Errorf("status after a second relay failed to start: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	r, _, _ := opsRelay(t)
	peer := udpConn(t, nil, netip.AddrPortFrom(lo4, 0))
	go echo(peer)
	tc := newTURNClient(t, udpConn(t, nil, netip.AddrPortFrom(lo4, 0)), r.listen[0], testUser, testPass)
	untilChannelData(t, r, tc, peer.LocalAddr(), "metrics")
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + r.MetricsAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"relaybox_up 1", "relaybox_allocations 1", "relaybox_permissions 1", "relaybox_channels 1", "relaybox_bindings 1",
		`relaybox_relayed_packets_total{path="channel-to-peer"}`, `relaybox_relayed_bytes_total{path="peer-to-channel"}`,
		`relaybox_responses_total{code="200"}`, `relaybox_responses_total{code="401"}`, "relaybox_auth_failures_total",
		"relaybox_binding_responses_total", "relaybox_send_errors_total 0", `relaybox_data_plane_info{mode="recorder"} 1`,
		"relaybox_data_plane_applied_total", "go_goroutines", "process_open_fds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d while serving, want 200", code)
	}

	// Before Run, the relay is alive but not ready.
	s, err := NewServer(testConfig(t, []netip.AddrPort{netip.AddrPortFrom(lo4, 0)}, []netip.Addr{lo4}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/readyz": 503, "/healthz": 200} {
		rec := httptest.NewRecorder()
		s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("%s before Run = %d, want %d", path, rec.Code, want)
		}
	}
}
