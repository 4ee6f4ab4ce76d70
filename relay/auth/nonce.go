package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"time"
)

// NonceCookie starts every nonce: RFC 8489's "obMatJos2" and the base64 of
// its 24 security-feature bits, of which this relay sets bit 0, "Password
// algorithms" (bit 0 is the most significant bit of the first byte, so the
// bytes are 80 00 00). A client that sees it must send PASSWORD-ALGORITHMS
// back unchanged if it sends PASSWORD-ALGORITHM, which defeats an attacker
// who strips SHA-256 from the offer (RFC 8489 section 9.2.1).
const NonceCookie = "obMatJos2gAAA"

// nonce layout after the cookie, before base64: a 4-byte big-endian Unix
// expiry and a 12-byte truncated HMAC-SHA256 over the expiry and the client's
// address. 96 bits of MAC make forging one nonce a 2^96 guess.
const (
	nonceExpiryLen = 4
	nonceMACLen    = 12
	nonceRawLen    = nonceExpiryLen + nonceMACLen
)

// nonceEncoding is strict: a lax decoder ignores the unused low bits of the
// last character, so several spellings of one nonce would all be valid.
var nonceEncoding = base64.RawURLEncoding.Strict()

// NonceLen is the length of every nonce Nonces makes.
var NonceLen = len(NonceCookie) + nonceEncoding.EncodedLen(nonceRawLen)

// Nonces makes and checks stateless nonces: a nonce carries its own expiry
// and a MAC binding it to the client's address, so checking one needs no
// table, a flood of 401s costs no memory, and a nonce cannot be replayed
// from another address. Restarting with a new key makes every nonce stale:
// clients get a 438 and retry once.
type Nonces struct {
	key      []byte
	lifetime time.Duration
}

// NewNonces returns nonces keyed with key (at least 16 random bytes) that
// live for lifetime (rounded down to whole seconds, at least one).
func NewNonces(key []byte, lifetime time.Duration) *Nonces {
	return &Nonces{key: bytes.Clone(key), lifetime: max(lifetime.Truncate(time.Second), time.Second)}
}

// Append appends to dst a new nonce for client, valid from now for the
// nonces' lifetime.
func (n *Nonces) Append(dst []byte, client netip.AddrPort, now time.Time) []byte {
	var raw [nonceRawLen]byte
	expiry := now.Unix() + int64(n.lifetime/time.Second)
	binary.BigEndian.PutUint32(raw[:], uint32(expiry))
	n.mac(raw[nonceExpiryLen:], raw[:nonceExpiryLen], client)
	dst = append(dst, NonceCookie...)
	return nonceEncoding.AppendEncode(dst, raw[:])
}

// Valid reports whether nonce was made by these nonces for client and has
// not expired at now. Anything else, a forged nonce or one made for another
// client included, is not valid: the relay answers 438 with a fresh one.
func (n *Nonces) Valid(nonce []byte, client netip.AddrPort, now time.Time) bool {
	if len(nonce) != NonceLen || !bytes.HasPrefix(nonce, []byte(NonceCookie)) {
		return false
	}
	var raw [nonceRawLen]byte
	if k, err := nonceEncoding.Decode(raw[:], nonce[len(NonceCookie):]); err != nil || k != nonceRawLen {
		return false
	}
	var want [nonceMACLen]byte
	n.mac(want[:], raw[:nonceExpiryLen], client)
	if !hmac.Equal(want[:], raw[nonceExpiryLen:]) {
		return false
	}
	return now.Unix() < int64(binary.BigEndian.Uint32(raw[:]))
}

func (n *Nonces) mac(dst, expiry []byte, client netip.AddrPort) {
	m := hmac.New(sha256.New, n.key)
	m.Write(expiry)
	a := client.Addr().Unmap().As16()
	m.Write(a[:])
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], client.Port())
	m.Write(port[:])
	var sum [sha256.Size]byte
	copy(dst, m.Sum(sum[:0]))
}

// HasPasswordAlgorithms reports whether nonce starts with a nonce cookie
// whose "Password algorithms" feature bit is set: the case where RFC 8489
// section 9.2.4 asks the server to check PASSWORD-ALGORITHMS for a bid-down.
func HasPasswordAlgorithms(nonce []byte) bool {
	const cookie = "obMatJos2"
	if len(nonce) < len(cookie)+4 || !bytes.HasPrefix(nonce, []byte(cookie)) {
		return false
	}
	var features [3]byte
	if _, err := base64.StdEncoding.Decode(features[:], nonce[len(cookie):len(cookie)+4]); err != nil {
		return false
	}
	return features[0]&0x80 != 0
}
