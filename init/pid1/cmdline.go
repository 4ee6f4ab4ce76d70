package pid1

import "strings"

// Param is one kernel command-line parameter, key=value or a bare key.
type Param struct {
	Key, Value string
}

// ParseCmdline splits a kernel command line as the kernel does: on spaces,
// except inside double quotes, which are removed.
func ParseCmdline(s string) []Param {
	var params []Param
	var cur strings.Builder
	quoted, started := false, false
	flush := func() {
		if started {
			k, v, _ := strings.Cut(cur.String(), "=")
			params = append(params, Param{Key: k, Value: v})
		}
		cur.Reset()
		started = false
	}
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			started = true
		case (r == ' ' || r == '\t' || r == '\n') && !quoted:
			flush()
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	flush()
	return params
}

// lookup returns the last value given for key, as the kernel's own
// parameters do.
func lookup(params []Param, key string) (string, bool) {
	v, ok := "", false
	for _, p := range params {
		if p.Key == key {
			v, ok = p.Value, true
		}
	}
	return v, ok
}
