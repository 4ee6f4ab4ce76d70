package bench

import (
	"fmt"
	"math"
	"slices"
)

// Summary is one figure over the runs that measured it.
type Summary struct {
	Median, Min, Max float64
	// N is how many runs gave a value; 0 means none did.
	N int
}

// Valid reports whether any run gave a value.
func (s Summary) Valid() bool { return s.N > 0 }

// String formats s as "median (min–max)" with three significant digits, or
// "–" when no run measured it.
func (s Summary) String() string {
	if !s.Valid() {
		return "–"
	}
	if s.N == 1 || s.Min == s.Max {
		return num(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.Median), num(s.Min), num(s.Max))
}

// Summarize returns the median, min and max of values, leaving out NaN
// (a run that measured nothing). The median of an even count is the mean of
// the two middle values.
func Summarize(values []float64) Summary {
	var v []float64
	for _, x := range values {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Summary{}
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return Summary{Median: m, Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// Ratios divides a by b run by run: a[k]/b[k], NaN where either run has no
// value or b[k] is not positive. Comparing within a run keeps a slow minute
// on a shared machine from favouring whichever server ran in it.
func Ratios(a, b []float64) []float64 {
	out := make([]float64, max(len(a), len(b)))
	for k := range out {
		out[k] = math.NaN()
		if k < len(a) && k < len(b) && !math.IsNaN(a[k]) && !math.IsNaN(b[k]) && b[k] > 0 {
			out[k] = a[k] / b[k]
		}
	}
	return out
}

// num formats x with three significant digits and a k (from ten thousand),
// M or G suffix: 123, 1.23, 45.6k, 2.5M.
func num(x float64) string {
	switch ax := math.Abs(x); {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "–"
	case ax >= 1e9:
		return trim(x/1e9) + "G"
	case ax >= 1e6:
		return trim(x/1e6) + "M"
	case ax >= 1e4:
		return trim(x/1e3) + "k"
	default:
		return trim(x)
	}
}

// trim formats x with three significant digits, without trailing zeros.
func trim(x float64) string {
	ax := math.Abs(x)
	prec := 0
	switch {
	case ax == 0:
	case ax < 1:
		prec = 3
	case ax < 10:
		prec = 2
	case ax < 100:
		prec = 1
	}
	s := fmt.Sprintf("%.*f", prec, x)
	if prec > 0 {
		for s[len(s)-1] == '0' {
			s = s[:len(s)-1]
		}
		if s[len(s)-1] == '.' {
			s = s[:len(s)-1]
		}
	}
	return s
}
