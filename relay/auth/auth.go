// Package auth holds the relay's long-term credentials (RFC 8489 section 9.2):
// who may allocate, with which password, and the stateless nonces that
// challenge them.
//
// Two kinds of credentials are accepted at once:
//   - static users, "name:password", from the config;
//   - TURN REST API credentials as coturn's use-auth-secret makes them: the
//     username is "<unix-expiry>:<user>" (or just "<unix-expiry>"), the
//     password base64(HMAC-SHA1(secret, username)). Several secrets are
//     accepted at once, so an operator can roll to a new one without
//     cutting anyone off.
//
// One file per concern: auth.go the credential store, key.go the HMAC keys
// derived from passwords, nonce.go the nonces.
//
// Passwords are used as the bytes given. RFC 8489 asks for the OpaqueString
// profile (RFC 8265) of the realm and password; like coturn and pion, this
// package does not apply it, so a non-ASCII password must be given in the
// form the client hashes it in.
package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors from Store.Passwords. The relay answers both with 401.
var (
	ErrUnknownUser = errors.New("unknown user")
	ErrExpired     = errors.New("credential expired")
)

// Limits of RFC 8489 sections 14.3 and 14.9.
const (
	maxUsernameBytes = 508 // "fewer than 509 bytes"
	maxRealmChars    = 127 // "fewer than 128 characters"
)

// Config is the credential part of the relay's configuration. Each field is
// a key of the same name in the config file and on the command line.
type Config struct {
	// Realm is the REALM of every challenge, part of every key. Key: realm.
	Realm string
	// Users are static users, each "name:password"; the password may
	// contain colons, the name may not. Key: user.
	Users []string
	// Secrets are TURN REST API shared secrets, all accepted. Key: auth-secret.
	Secrets []string
}

// Account is who a request authenticated as.
type Account struct {
	// Username is the USERNAME the request carried.
	Username string
	// User names the person for quotas: a static user's name, or the part
	// of a REST username after the expiry (the whole username if none).
	User string
	// Expires is when a REST credential stops being accepted; zero for a
	// static user.
	Expires time.Time
}

// Store answers "which passwords may this username have used". It is
// immutable and safe for concurrent use.
type Store struct {
	realm   string
	users   map[string][]byte
	secrets [][]byte
}

// NewStore checks c and returns its Store. Errors name the key at fault.
func NewStore(c Config) (*Store, error) {
	var errs []error
	if err := checkRealm(c.Realm); err != nil {
		errs = append(errs, err)
	}
	s := &Store{realm: c.Realm, users: make(map[string][]byte, len(c.Users))}
	for _, u := range c.Users {
		name, password, ok := strings.Cut(u, ":")
		switch {
		case !ok || name == "" || password == "":
			errs = append(errs, fmt.Errorf("user %q: want name:password with neither part empty", redact(u)))
		case len(name) > maxUsernameBytes || !utf8.ValidString(name):
			errs = append(errs, fmt.Errorf("user %q: a name is UTF-8 of at most %d bytes (RFC 8489)", redact(u), maxUsernameBytes))
		case s.users[name] != nil:
			errs = append(errs, fmt.Errorf("user %q: given twice; give each user once", name))
		default:
			s.users[name] = []byte(password)
		}
	}
	for i, secret := range c.Secrets {
		if secret == "" {
			errs = append(errs, fmt.Errorf("auth-secret #%d: empty; a REST secret needs at least one character (prefer 32 random bytes)", i+1))
			continue
		}
		s.secrets = append(s.secrets, []byte(secret))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// redact keeps a user's name and hides the password in error messages.
func redact(u string) string {
	if name, _, ok := strings.Cut(u, ":"); ok {
		return name + ":…"
	}
	return u
}

func checkRealm(r string) error {
	switch {
	case r == "":
		return errors.New("realm: empty; want the relay's domain name, such as turn.example.com")
	case !utf8.ValidString(r) || utf8.RuneCountInString(r) > maxRealmChars:
		return fmt.Errorf("realm %q: want UTF-8 text of fewer than %d characters (RFC 8489)", r, maxRealmChars+1)
	case strings.ContainsAny(r, "\"\\"):
		return fmt.Errorf("realm %q: quotes and backslashes are not allowed (RFC 8489 quoted-string)", r)
	}
	return nil
}

// Realm is the REALM of the relay's challenges.
func (s *Store) Realm() string { return s.realm }

// Passwords appends to dst every password username may have used at now and
// says whose they are. A static user has one; a REST username has one per
// secret. It returns ErrUnknownUser for a name that is neither a static user
// nor a REST username while secrets are configured, and ErrExpired for a
// REST username whose expiry is past.
func (s *Store) Passwords(username string, now time.Time, dst [][]byte) ([][]byte, Account, error) {
	if p, ok := s.users[username]; ok {
		return append(dst, p), Account{Username: username, User: username}, nil
	}
	if len(s.secrets) == 0 {
		return dst, Account{}, ErrUnknownUser
	}
	expiry, user, ok := ParseRESTUsername(username)
	if !ok {
		return dst, Account{}, ErrUnknownUser
	}
	if expiry < now.Unix() {
		return dst, Account{}, ErrExpired
	}
	for _, secret := range s.secrets {
		dst = append(dst, []byte(restPassword(secret, username)))
	}
	return dst, Account{Username: username, User: user, Expires: time.Unix(expiry, 0)}, nil
}

// ParseRESTUsername splits a TURN REST username "<unix-expiry>:<user>" or
// "<unix-expiry>". user is the part after the colon, or the whole username
// when there is none, so that quotas still have a key.
func ParseRESTUsername(username string) (expiry int64, user string, ok bool) {
	ts, rest, hasUser := strings.Cut(username, ":")
	if ts == "" || len(ts) > 19 || len(username) > maxUsernameBytes {
		return 0, "", false
	}
	for _, c := range []byte(ts) {
		if c < '0' || c > '9' {
			return 0, "", false
		}
	}
	expiry, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, "", false
	}
	if !hasUser {
		rest = username
	}
	return expiry, rest, true
}

// RESTUsername is the username of a REST credential for user valid until
// expires, as a provisioning service makes it.
func RESTUsername(expires time.Time, user string) string {
	return strconv.FormatInt(expires.Unix(), 10) + ":" + user
}

// RESTPassword is the password of REST username under secret:
// base64(HMAC-SHA1(secret, username)), as coturn's use-auth-secret computes it.
func RESTPassword(secret, username string) string {
	return restPassword([]byte(secret), username)
}

func restPassword(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
