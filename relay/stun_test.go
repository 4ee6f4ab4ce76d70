package relay

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/stun/v3"
)

var (
	clientV4     = netip.MustParseAddrPort("127.0.0.1:40000")
	clientV6     = netip.MustParseAddrPort("[::1]:40001")
	clientMapped = netip.MustParseAddrPort("[::ffff:127.0.0.1]:40002")
)

// tid is the transaction ID of every test request, so drops and answers can
// be told apart from the bytes alone.
var tid = [stun.TransactionIDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// request builds a STUN message of type typ with the test transaction ID and
// the given attributes, in order. It is the one packet builder of these tests.
func request(t testing.TB, typ stun.MessageType, setters ...stun.Setter) []byte {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{typ, stun.NewTransactionIDSetter(tid)}, setters...)...)
	if err != nil {
		t.Fatalf("stun.Build(%v) = %v", typ, err)
	}
	return m.Raw
}

// mutate returns a copy of b changed by f.
func mutate(b []byte, f func([]byte) []byte) []byte {
	return f(bytes.Clone(b))
}

// answer is what a test checks in a response.
type answer struct {
	Type     string
	Mapped   string   // XOR-MAPPED-ADDRESS
	Code     int      // ERROR-CODE
	Reason   string   // ERROR-CODE reason
	Unknown  []string // UNKNOWN-ATTRIBUTES
	Software string
}

// parseAnswer decodes resp, checks what every response must have (the
// request's transaction ID, a valid FINGERPRINT as the last attribute) and
// returns the rest; nil for an empty resp (a drop).
func parseAnswer(t testing.TB, resp []byte, wantTID [stun.TransactionIDSize]byte) *answer {
	t.Helper()
	if len(resp) == 0 {
		return nil
	}
	m := new(stun.Message)
	if err := stun.Decode(resp, m); err != nil {
		t.Fatalf("stun.Decode(response %x) = %v, want a STUN message", resp, err)
	}
	if m.TransactionID != wantTID {
		t.Errorf("response transaction ID = %x, want %x", m.TransactionID, wantTID)
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		t.Errorf("response FINGERPRINT check = %v, want nil", err)
	}
	if n := len(m.Attributes); n == 0 || m.Attributes[n-1].Type != stun.AttrFingerprint {
		t.Errorf("response attributes = %v, want FINGERPRINT last", m.Attributes)
	}
	a := &answer{Type: m.Type.String()}
	if m.Contains(stun.AttrXORMappedAddress) {
		var x stun.XORMappedAddress
		if err := x.GetFrom(m); err != nil {
			t.Errorf("XOR-MAPPED-ADDRESS GetFrom = %v", err)
		}
		a.Mapped = x.String()
	}
	if m.Contains(stun.AttrErrorCode) {
		var e stun.ErrorCodeAttribute
		if err := e.GetFrom(m); err != nil {
			t.Errorf("ERROR-CODE GetFrom = %v", err)
		}
		a.Code, a.Reason = int(e.Code), string(e.Reason)
	}
	if m.Contains(stun.AttrUnknownAttributes) {
		var u stun.UnknownAttributes
		if err := u.GetFrom(m); err != nil {
			t.Errorf("UNKNOWN-ATTRIBUTES GetFrom = %v", err)
		}
		for _, typ := range u {
			a.Unknown = append(a.Unknown, typ.String())
		}
	}
	if m.Contains(stun.AttrSoftware) {
		var s stun.Software
		if err := s.GetFrom(m); err != nil {
			t.Errorf("SOFTWARE GetFrom = %v", err)
		}
		a.Software = s.String()
	}
	return a
}

type handleTest struct {
	name string
	req  []byte
	from netip.AddrPort
	want *answer // nil: dropped
}

func handleTests(t testing.TB) []handleTest {
	binding := request(t, stun.BindingRequest, stun.Fingerprint)
	changeRequest := stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{0, 0, 0, 6}}
	success := func(mapped string) *answer {
		return &answer{Type: "Binding success response", Mapped: mapped, Software: "relaybox"}
	}
	badRequest := func(method string) *answer {
		return &answer{Type: method + " error response", Code: 400, Reason: "Bad Request", Software: "relaybox"}
	}
	channelData := []byte{0x40, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef}

	return []handleTest{
		{"binding v4", binding, clientV4, success("127.0.0.1:40000")},
		{"binding v6", binding, clientV6, success("[::1]:40001")},
		{"binding from v4-mapped v6 answers v4", binding, clientMapped, success("127.0.0.1:40002")},
		{"binding without fingerprint", request(t, stun.BindingRequest), clientV4, success("127.0.0.1:40000")},
		{
			"binding with credentials ignores them",
			request(t, stun.BindingRequest, stun.NewUsername("alice"), stun.NewRealm("example.org"),
				stun.NewNonce("n"), stun.NewShortTermIntegrity("secret"), stun.Fingerprint),
			clientV4, success("127.0.0.1:40000"),
		},
		{
			"binding ignores unknown comprehension-optional attribute",
			request(t, stun.BindingRequest, stun.RawAttribute{Type: 0xC0FE, Value: []byte("x")}, stun.Fingerprint),
			clientV4, success("127.0.0.1:40000"),
		},
		{
			"binding ignores unknown attribute after MESSAGE-INTEGRITY",
			request(t, stun.BindingRequest, stun.NewShortTermIntegrity("secret"), changeRequest),
			clientV4, success("127.0.0.1:40000"),
		},
		{
			"binding with unknown comprehension-required attributes",
			request(t, stun.BindingRequest, changeRequest, stun.RawAttribute{Type: 0x7FFF},
				changeRequest, stun.NewSoftware("client"), stun.Fingerprint),
			clientV4,
			&answer{
				Type: "Binding error response", Code: 420, Reason: "Unknown Attribute",
				Unknown:  []string{"0x3", "0x7fff"}, // CHANGE-REQUEST, once, and the last required type
				Software: "relaybox",
			},
		},
		{
			"allocate",
			request(t, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
				stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}, stun.Fingerprint),
			clientV4, badRequest("Allocate"),
		},
		{"refresh", request(t, stun.NewType(stun.MethodRefresh, stun.ClassRequest)), clientV6, badRequest("Refresh")},
		{"reserved method 0", request(t, stun.NewType(0, stun.ClassRequest)), clientV4, badRequest("0x0")},

		{"indication", request(t, stun.NewType(stun.MethodBinding, stun.ClassIndication), stun.Fingerprint), clientV4, nil},
		{"send indication", request(t, stun.NewType(stun.MethodSend, stun.ClassIndication)), clientV4, nil},
		{"success response", request(t, stun.BindingSuccess, stun.Fingerprint), clientV4, nil},
		{"error response", request(t, stun.BindingError, stun.CodeBadRequest, stun.Fingerprint), clientV4, nil},
		{
			"bad fingerprint",
			mutate(binding, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
			clientV4, nil,
		},
		{
			"fingerprint not last",
			request(t, stun.BindingRequest, stun.Fingerprint, stun.NewSoftware("late")),
			clientV4, nil,
		},
		{
			"fingerprint of wrong size",
			request(t, stun.BindingRequest, stun.RawAttribute{Type: stun.AttrFingerprint, Value: []byte{1, 2}}),
			clientV4, nil,
		},
		{"channel data", channelData, clientV4, nil},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: relay\r\n\r\n"), clientV4, nil},
		{"empty", nil, clientV4, nil},
		{"truncated header", binding[:headerSize-1], clientV4, nil},
		{"truncated attributes", binding[:len(binding)-4], clientV4, nil},
		{"trailing byte", append(bytes.Clone(binding), 0), clientV4, nil},
		{
			"length not a multiple of 4",
			mutate(request(t, stun.BindingRequest), func(b []byte) []byte {
				binary.BigEndian.PutUint16(b[2:4], 2)
				return append(b, 0, 0)
			}),
			clientV4, nil,
		},
		{
			"attribute longer than message",
			mutate(request(t, stun.BindingRequest, stun.NewSoftware("abcd")), func(b []byte) []byte {
				binary.BigEndian.PutUint16(b[headerSize+2:], 200)
				return b
			}),
			clientV4, nil,
		},
		{
			"wrong magic cookie",
			mutate(binding, func(b []byte) []byte { b[4] ^= 0xFF; return b }),
			clientV4, nil,
		},
		{
			"top bits set",
			mutate(request(t, stun.BindingRequest), func(b []byte) []byte { b[0] |= 0x80; return b }),
			clientV4, nil,
		},
		{"no source address", binding, netip.AddrPort{}, nil},
	}
}

func TestHandle(t *testing.T) {
	for _, tt := range handleTests(t) {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{Software: "relaybox"}
			resp := h.Handle(tt.req, tt.from, nil)
			if diff := cmp.Diff(tt.want, parseAnswer(t, resp, tid)); diff != "" {
				t.Errorf("Handle(%x, %v) answer mismatch (-want +got):\n%s", tt.req, tt.from, diff)
			}

			// Append semantics: the response lands after what out held,
			// byte for byte the same as into an empty out.
			prefix := []byte("prefix")
			got := h.Handle(tt.req, tt.from, bytes.Clone(prefix))
			if want := append(bytes.Clone(prefix), resp...); !bytes.Equal(got, want) {
				t.Errorf("Handle(%x, %v, %q) = %x, want %x", tt.req, tt.from, prefix, got, want)
			}
		})
	}
}

func TestHandleSoftware(t *testing.T) {
	req := request(t, stun.BindingRequest)
	h := &Handler{}
	if got := parseAnswer(t, h.Handle(req, clientV4, nil), tid).Software; got != "" {
		t.Errorf("Handler{}.Handle(binding) SOFTWARE = %q, want none", got)
	}
	// Changing Software between calls takes effect.
	h.Software = "other"
	if got := parseAnswer(t, h.Handle(req, clientV4, nil), tid).Software; got != "other" {
		t.Errorf("Handler{Software: %q}.Handle(binding) SOFTWARE = %q, want %q", h.Software, got, h.Software)
	}
}

// TestHandleAllocs holds the per-packet path to zero allocations once a
// Handler and its output buffer are warm.
func TestHandleAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	h := &Handler{Software: "relaybox"}
	out := make([]byte, 0, 1500)
	for _, tt := range handleTests(t) {
		h.Handle(tt.req, tt.from, out[:0]) // warm the scratch buffers
		allocs := testing.AllocsPerRun(100, func() { out = h.Handle(tt.req, tt.from, out[:0]) })
		if allocs != 0 {
			t.Errorf("Handle(%s) allocates %v times per call, want 0", tt.name, allocs)
		}
	}
}

func FuzzHandle(f *testing.F) {
	for _, tt := range handleTests(f) {
		f.Add(tt.req, tt.from.Addr().AsSlice(), tt.from.Port())
	}
	h := &Handler{Software: "relaybox"}
	f.Fuzz(func(t *testing.T, req, ip []byte, port uint16) {
		addr, _ := netip.AddrFromSlice(ip)
		from := netip.AddrPortFrom(addr, port)
		resp := h.Handle(req, from, nil)
		if len(resp) == 0 {
			return
		}
		var reqTID [stun.TransactionIDSize]byte
		if len(req) < headerSize {
			t.Fatalf("Handle(%x) = %x, want no answer to a short datagram", req, resp)
		}
		copy(reqTID[:], req[8:headerSize])
		a := parseAnswer(t, resp, reqTID)
		if a.Mapped != "" && a.Mapped != netip.AddrPortFrom(addr.Unmap(), port).String() {
			t.Errorf("Handle(%x, %v) XOR-MAPPED-ADDRESS = %s, want the sender", req, from, a.Mapped)
		}
	})
}

func BenchmarkHandleBinding(b *testing.B) {
	req := request(b, stun.BindingRequest, stun.Fingerprint)
	h := &Handler{Software: "relaybox"}
	out := make([]byte, 0, 1500)
	b.ReportAllocs()
	for b.Loop() {
		out = h.Handle(req, clientV4, out[:0])
	}
}
