package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// A config file holds one `key = value` per line, the keys being the same
// as the flags (and, on the appliance, the relaybox.<key> kernel
// parameters):
//
//	# lines whose first character other than a space is # are comments
//	listen = 0.0.0.0:3478
//	listen = [::]:3478            repeatable keys repeat
//	software = "relaybox "        quotes keep spaces at either end
//
// A value is the rest of the line after the first '=', trimmed; it may
// contain '#' and '='. There are no inline comments: a secret may hold any
// character.

// Setting is one key and value, with where it came from for messages.
type Setting struct {
	Key, Value string
	// Source says where the setting was read, e.g. "relaybox.conf:12" or
	// "kernel command line".
	Source string
}

// ReadConfigFile reads the settings of a config file; name is used in the
// Source of each setting and in errors. Syntax errors are reported all at
// once with their line numbers; whether a key is known and its value good
// is for whoever applies the settings to its flags.
func ReadConfigFile(r io.Reader, name string) ([]Setting, error) {
	var settings []Setting
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		src := fmt.Sprintf("%s:%d", name, n)
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t\"") {
			errs = append(errs, fmt.Errorf("%s: want `key = value`, got %q", src, line))
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		settings = append(settings, Setting{Key: key, Value: value, Source: src})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	return settings, errors.Join(errs...)
}

// MergeSettings layers settings: for each key, the values of the last
// layer that sets it replace those of earlier layers, so a repeatable key
// given on the command line replaces, not extends, the config file's. The
// result is in layer order.
func MergeSettings(layers ...[]Setting) []Setting {
	last := map[string]int{} // key → index of the last layer setting it
	for i, layer := range layers {
		for _, s := range layer {
			last[s.Key] = i
		}
	}
	var out []Setting
	for i, layer := range layers {
		for _, s := range layer {
			if last[s.Key] == i {
				out = append(out, s)
			}
		}
	}
	return out
}

// SecretKeys are keys whose values are never printed.
var SecretKeys = map[string]bool{
	"auth-secret": true,
	"user":        true,
}

// Redacted is how a setting is shown: secrets as "(secret)".
func (s Setting) Redacted() string {
	if SecretKeys[s.Key] {
		return s.Key + " = (secret)"
	}
	return s.Key + " = " + s.Value
}
