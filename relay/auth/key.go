package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
)

// Algorithm is a STUN password algorithm (RFC 8489 section 18.5): how the
// long-term key is derived from the password. Its value is the one carried
// in PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS.
type Algorithm uint16

// The password algorithms of RFC 8489.
const (
	MD5    Algorithm = 0x0001
	SHA256 Algorithm = 0x0002
)

func (a Algorithm) String() string {
	switch a {
	case MD5:
		return "MD5"
	case SHA256:
		return "SHA-256"
	}
	return fmt.Sprintf("algorithm(%#04x)", uint16(a))
}

// Supported reports whether a is an algorithm this package derives keys for.
func (a Algorithm) Supported() bool { return a == MD5 || a == SHA256 }

// Key is the long-term credential key of RFC 8489 section 9.2.2 (and 18.5.1
// for SHA-256): the hash under a of "username:realm:password". MESSAGE-
// INTEGRITY is HMAC-SHA1 keyed with it, MESSAGE-INTEGRITY-SHA256 HMAC-SHA256.
// An unsupported algorithm gets the MD5 key, the RFC's default.
func Key(a Algorithm, username, realm string, password []byte) []byte {
	if a == SHA256 {
		h := sha256.New()
		writeKeyInput(h, username, realm, password)
		return h.Sum(nil)
	}
	h := md5.New()
	writeKeyInput(h, username, realm, password)
	return h.Sum(nil)
}

func writeKeyInput(h interface{ Write([]byte) (int, error) }, username, realm string, password []byte) {
	h.Write([]byte(username))
	h.Write([]byte{':'})
	h.Write([]byte(realm))
	h.Write([]byte{':'})
	h.Write(password)
}
