package bench

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var nan = math.NaN()

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{nan, nan}, Summary{}},
		{[]float64{3}, Summary{3, 3, 3, 1}},
		{[]float64{5, 1, 3}, Summary{3, 1, 5, 3}},
		{[]float64{4, 1, 3, 10}, Summary{3.5, 1, 10, 4}},
		{[]float64{2, nan, 8}, Summary{5, 2, 8, 2}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestRatiosPairRunByRun(t *testing.T) {
	// Run 1 was slow for both: the ratios stay 10, which a ratio of
	// medians (or of pooled values) would not show.
	a := []float64{1000, 100, 1000, nan}
	b := []float64{100, 10, 0, 5}
	got := Ratios(a, b)
	want := []float64{10, 10, nan, nan}
	if diff := cmp.Diff(want, got, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("Ratios(%v, %v): -want +got\n%s", a, b, diff)
	}
	if got := Ratios([]float64{1, 2}, []float64{1}); len(got) != 2 || !math.IsNaN(got[1]) {
		t.Errorf("Ratios of unequal lengths = %v, want [1 NaN]", got)
	}
	if s := Summarize(Ratios(a, b)); s != (Summary{10, 10, 10, 2}) {
		t.Errorf("Summarize(Ratios) = %+v, want median 10 over 2 runs", s)
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {0.5, "0.5"}, {1.234, "1.23"}, {12.34, "12.3"}, {123.4, "123"}, {9999, "9999"},
		{12345, "12.3k"}, {250000, "250k"}, {2.5e6, "2.5M"}, {999e3, "999k"}, {12.3e6, "12.3M"}, {2e10, "20G"},
		{nan, "–"}, {math.Inf(1), "–"}, {-1500, "-1500"},
	} {
		if got := num(tc.in); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSummaryString(t *testing.T) {
	for _, tc := range []struct {
		in   Summary
		want string
	}{
		{Summary{}, "–"},
		{Summary{5, 5, 5, 1}, "5"},
		{Summary{120e3, 100e3, 130e3, 3}, "120k (100k–130k)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}
