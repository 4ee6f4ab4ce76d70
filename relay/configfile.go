package relay

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
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

// SecretKeys are keys whose values are never printed: PID 1's console,
// the relay's logs and its errors show "(secret)" instead. A user's value
// holds a password; auth-secret-file is a path, not a secret.
var SecretKeys = map[string]bool{
	"auth-secret": true,
	"user":        true,
	"nonce-key":   true,
}

// Redacted is how a setting is shown: secrets as "(secret)".
func (s Setting) Redacted() string {
	if SecretKeys[s.Key] {
		return s.Key + " = (secret)"
	}
	return s.Key + " = " + s.Value
}

// ApplySettings sets each setting on fs, in order. It is strict: an
// unknown key or a bad value is an error naming the key and where it was
// set, and every problem is reported at once.
func ApplySettings(fs *flag.FlagSet, settings []Setting) error {
	var errs []error
	for _, s := range settings {
		if fs.Lookup(s.Key) == nil {
			errs = append(errs, fmt.Errorf("%s: unknown key %q; the keys are %s", s.Source, s.Key, strings.Join(flagNames(fs), ", ")))
			continue
		}
		if err := fs.Set(s.Key, s.Value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Source, err))
		}
	}
	return errors.Join(errs...)
}

func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	slices.Sort(names)
	return names
}

// ParseArgs reads the relay's configuration from its command line and the
// config file that --config names: flags on the command line win over the
// file key by key (a repeatable key given on the command line replaces the
// file's values of it). The result is checked as a whole with Validate.
// Flag syntax errors come back as the flag package words them; -h as
// flag.ErrHelp.
func ParseArgs(args []string) (Config, error) {
	var c Config
	// First pass: record the command line as settings, in order.
	var cmdline []Setting
	record := flag.NewFlagSet("relay", flag.ContinueOnError)
	record.SetOutput(io.Discard)
	NewFlagSet(&c).VisitAll(func(f *flag.Flag) {
		record.Var(&keyFlag{get: func() string { return "" }, set: func(v string) error {
			cmdline = append(cmdline, Setting{Key: f.Name, Value: v, Source: "command line"})
			return nil
		}}, f.Name, f.Usage)
	})
	if err := record.Parse(args); err != nil {
		return c, err
	}
	if record.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: relay takes only flags (relay -h lists them)", record.Arg(0))
	}
	var file []Setting
	for _, s := range cmdline {
		if s.Key != "config" {
			continue
		}
		f, err := os.Open(s.Value)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		file, err = ReadConfigFile(f, s.Value)
		f.Close()
		if err != nil {
			return c, err
		}
		for _, fs := range file {
			if fs.Key == "config" {
				return c, fmt.Errorf("%s: config: a config file cannot name another; give --config on the command line", fs.Source)
			}
		}
	}
	fs := NewFlagSet(&c)
	if err := ApplySettings(fs, MergeSettings(file, cmdline)); err != nil {
		return c, err
	}
	return c, c.Validate()
}
