package auth

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Unix(1_699_990_000, 0) // before the test REST expiry 1700000000

func mustStore(t testing.TB, c Config) *Store {
	t.Helper()
	s, err := NewStore(c)
	if err != nil {
		t.Fatalf("NewStore(%+v) = %v", c, err)
	}
	return s
}

// TestKey checks the key derivation against RFC 8489 section 9.2.2's
// example and an independent SHA-256 (sha256sum of the same string).
func TestKey(t *testing.T) {
	for _, tc := range []struct {
		alg  Algorithm
		want string
	}{
		{MD5, "8493fbc53ba582fb4c044c456bdc40eb"},
		{SHA256, "07e934117abd40836e7c6329b54731b2b2d2a5f9a71f544922d75e0730d8251b"},
		{Algorithm(7), "8493fbc53ba582fb4c044c456bdc40eb"}, // unknown: the MD5 default
	} {
		if got := hex.EncodeToString(Key(tc.alg, "user", "realm", []byte("pass"))); got != tc.want {
			t.Errorf("Key(%v, user, realm, pass) = %s, want %s", tc.alg, got, tc.want)
		}
	}
}

// TestRESTPassword checks coturn compatibility against openssl:
// echo -n 1700000000:alice | openssl dgst -sha1 -hmac s3cret -binary | base64
func TestRESTPassword(t *testing.T) {
	if got, want := RESTPassword("s3cret", "1700000000:alice"), "TtElzSjT0GdnTQ9xdcRNxx96yQs="; got != want {
		t.Errorf("RESTPassword = %s, want %s", got, want)
	}
	if got, want := RESTUsername(time.Unix(1700000000, 0), "alice"), "1700000000:alice"; got != want {
		t.Errorf("RESTUsername = %s, want %s", got, want)
	}
}

func TestPasswords(t *testing.T) {
	s := mustStore(t, Config{
		Realm:   "example.org",
		Users:   []string{"bob:hunter2", "carol:pa:ss", "1700000001:static-pw"},
		Secrets: []string{"s3cret", "rotated"},
	})
	type result struct {
		Passwords []string
		Account   Account
		Err       string
	}
	for _, tc := range []struct {
		username string
		now      time.Time
		want     result
	}{
		{"bob", t0, result{Passwords: []string{"hunter2"}, Account: Account{Username: "bob", User: "bob"}}},
		{"carol", t0, result{Passwords: []string{"pa:ss"}, Account: Account{Username: "carol", User: "carol"}}},
		{"1700000000:alice", t0, result{
			Passwords: []string{"TtElzSjT0GdnTQ9xdcRNxx96yQs=", "iHxBMIMHNzDu7P5moqs91AgxTO0="},
			Account:   Account{Username: "1700000000:alice", User: "alice", Expires: time.Unix(1700000000, 0)},
		}},
		{"1700000000", t0, result{
			Passwords: []string{RESTPassword("s3cret", "1700000000"), RESTPassword("rotated", "1700000000")},
			Account:   Account{Username: "1700000000", User: "1700000000", Expires: time.Unix(1700000000, 0)},
		}},
		{"1700000001", t0, result{ // a static user wins over a REST username of the same spelling
			Passwords: []string{"static-pw"},
			Account:   Account{Username: "1700000001", User: "1700000001"},
		}},
		{"1700000000:alice", time.Unix(1700000000, 0), result{ // the expiry second itself is still valid, as in coturn
			Passwords: []string{"TtElzSjT0GdnTQ9xdcRNxx96yQs=", "iHxBMIMHNzDu7P5moqs91AgxTO0="},
			Account:   Account{Username: "1700000000:alice", User: "alice", Expires: time.Unix(1700000000, 0)},
		}},
		{"1700000000:alice", time.Unix(1700000001, 0), result{Err: "credential expired"}},
		{"mallory", t0, result{Err: "unknown user"}},
		{"-5:alice", t0, result{Err: "unknown user"}},
		{"17e9:alice", t0, result{Err: "unknown user"}},
		{"99999999999999999999:alice", t0, result{Err: "unknown user"}},
		{"", t0, result{Err: "unknown user"}},
	} {
		pw, acct, err := s.Passwords(tc.username, tc.now, nil)
		got := result{Account: acct}
		for _, p := range pw {
			got.Passwords = append(got.Passwords, string(p))
		}
		if err != nil {
			got.Err = err.Error()
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Passwords(%q, %v) mismatch (-want +got):\n%s", tc.username, tc.now.Unix(), diff)
		}
	}
}

func TestPasswordsWithoutSecrets(t *testing.T) {
	s := mustStore(t, Config{Realm: "r", Users: []string{"bob:pw"}})
	if _, _, err := s.Passwords("1700000000:alice", t0, nil); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("REST username without secrets: err = %v, want ErrUnknownUser", err)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want []string
	}{
		{Config{}, []string{"realm: empty"}},
		{Config{Realm: strings.Repeat("r", 128)}, []string{"realm \"rrr"}},
		{Config{Realm: `a"b`}, []string{"quotes"}},
		{Config{Realm: "r", Users: []string{"bob"}}, []string{`user "bob": want name:password`}},
		{Config{Realm: "r", Users: []string{":pw"}}, []string{`user ":…"`}},
		{Config{Realm: "r", Users: []string{"bob:"}}, []string{`user "bob:…"`}},
		{Config{Realm: "r", Users: []string{"bob:a", "bob:b"}}, []string{`user "bob": given twice`}},
		{Config{Realm: "r", Secrets: []string{"ok", ""}}, []string{"auth-secret #2: empty"}},
	} {
		_, err := NewStore(tc.c)
		if err == nil {
			t.Errorf("NewStore(%+v) = nil, want errors %q", tc.c, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("NewStore(%+v) = %q, want it to contain %q", tc.c, err, w)
			}
		}
		if strings.Contains(err.Error(), "hunter") {
			t.Errorf("error %q leaks a password", err)
		}
	}
}

func TestNonces(t *testing.T) {
	n := NewNonces([]byte("0123456789abcdef"), 10*time.Minute)
	client := netip.MustParseAddrPort("198.18.0.10:40000")
	nonce := n.Append(nil, client, t0)
	if len(nonce) != NonceLen || !strings.HasPrefix(string(nonce), NonceCookie) {
		t.Fatalf("nonce %q: want %d bytes starting with %s", nonce, NonceLen, NonceCookie)
	}
	if !HasPasswordAlgorithms(nonce) {
		t.Errorf("HasPasswordAlgorithms(%q) = false, want true", nonce)
	}
	other := NewNonces([]byte("another key....."), 10*time.Minute)
	for _, tc := range []struct {
		name   string
		n      *Nonces
		nonce  []byte
		client string
		at     time.Duration
		want   bool
	}{
		{"fresh", n, nonce, "198.18.0.10:40000", 0, true},
		{"mapped form of the same client", n, nonce, "[::ffff:198.18.0.10]:40000", 0, true},
		{"just before expiry", n, nonce, "198.18.0.10:40000", 10*time.Minute - time.Second, true},
		{"at expiry", n, nonce, "198.18.0.10:40000", 10 * time.Minute, false},
		{"hours later", n, nonce, "198.18.0.10:40000", 5 * time.Hour, false},
		{"another port", n, nonce, "198.18.0.10:40001", 0, false},
		{"another address", n, nonce, "198.18.0.11:40000", 0, false},
		{"another key (a restart)", other, nonce, "198.18.0.10:40000", 0, false},
		{"truncated", n, nonce[:len(nonce)-1], "198.18.0.10:40000", 0, false},
		{"no cookie", n, nonce[len(NonceCookie):], "198.18.0.10:40000", 0, false},
		{"flipped MAC bit", n, flipLast(nonce), "198.18.0.10:40000", 0, false},
		{"empty", n, nil, "198.18.0.10:40000", 0, false},
	} {
		if got := tc.n.Valid(tc.nonce, netip.MustParseAddrPort(tc.client), t0.Add(tc.at)); got != tc.want {
			t.Errorf("%s: Valid = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func flipLast(b []byte) []byte {
	c := []byte(string(b))
	if c[len(c)-1] == 'A' {
		c[len(c)-1] = 'B'
	} else {
		c[len(c)-1] = 'A'
	}
	return c
}

func TestHasPasswordAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		nonce string
		want  bool
	}{
		{"obMatJos2gAAAxyz", true},
		{"obMatJos2/////", true},
		{"obMatJos2AAAA", false},        // no features
		{"obMatJos2QAAA", false},        // username anonymity only
		{"obMatJos2AAACf//499k", false}, // RFC 8489 B.1's example sets bit 22
		{"f//499k954d6OL34oL9FSTvy64sA", false},
		{"obMatJos2", false},
		{"obMatJos2g!!!", false},
	} {
		if got := HasPasswordAlgorithms([]byte(tc.nonce)); got != tc.want {
			t.Errorf("HasPasswordAlgorithms(%q) = %v, want %v", tc.nonce, got, tc.want)
		}
	}
}

func FuzzParseRESTUsername(f *testing.F) {
	for _, s := range []string{"1700000000:alice", "1700000000", ":", "", "1:2:3", "99999999999999999999", "-1:x", "+1:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		expiry, user, ok := ParseRESTUsername(s)
		if !ok {
			return
		}
		if expiry < 0 {
			t.Errorf("ParseRESTUsername(%q) expiry = %d, want >= 0", s, expiry)
		}
		if !strings.HasSuffix(s, user) {
			t.Errorf("ParseRESTUsername(%q) user = %q, not a suffix", s, user)
		}
	})
}

func FuzzNonceValid(f *testing.F) {
	n := NewNonces([]byte("0123456789abcdef"), time.Minute)
	client := netip.MustParseAddrPort("198.18.0.10:40000")
	good := n.Append(nil, client, t0)
	f.Add(good)
	f.Add([]byte(NonceCookie))
	f.Add([]byte("obMatJos2AAAA" + strings.Repeat("A", 22)))
	f.Fuzz(func(t *testing.T, nonce []byte) {
		if n.Valid(nonce, client, t0) && string(nonce) != string(good) {
			t.Errorf("Valid(%q) = true for a nonce this test did not make", nonce)
		}
		HasPasswordAlgorithms(nonce)
	})
}
