package bench

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// Chart is one panel of the plot: horizontal bars, one per row, with the
// runs' range as a whisker.
type Chart struct {
	Title string
	// Unit labels the axis.
	Unit string
	// Log draws the axis in decades: for figures that differ tenfold.
	Log  bool
	Rows []Row
	// Lines are vertical reference lines across the panel (a floor, a
	// limit).
	Lines []RefLine
}

// Row is one bar.
type Row struct {
	// Group, when it differs from the previous row's, is shown as a
	// heading above the row.
	Group string
	Label string
	Value Summary
	// Color is a key of palette ("xdp", "met", ...); unknown keys are grey.
	Color string
	// LowerBound marks a value the rig capped: the label reads "≥".
	LowerBound bool
	// Mark, if not 0, is a goal drawn as a tick on the row.
	Mark float64
	// Note is shown instead of a bar when Value is not valid.
	Note string
	// Suffix follows the value's label ("×").
	Suffix string
}

// RefLine is a vertical line at Value, labelled.
type RefLine struct {
	Value float64
	Label string
}

var palette = map[string]string{
	XDP:       "#2a9d4b",
	UserSpace: "#3a6fd8",
	Relaybox:  "#3a6fd8",
	Coturn:    "#e07b24",
	Pion:      "#8e4fc2",
	MACSwap:   "#808080",
	"met":     "#2a9d4b",
	"missed":  "#d33c3c",
	"plain":   "#5a7fa8",
}

// Layout of a panel, in pixels.
const (
	svgWidth   = 1060
	labelRight = 330 // labels end here (right-aligned)
	plotLeft   = 340
	plotWidth  = 470
	valueLeft  = plotLeft + plotWidth + 8
	rowHeight  = 18
	barHeight  = 12
	titleSpace = 30
	axisSpace  = 34
	chartGap   = 24
)

// WriteSVG draws charts one under the other as a standalone SVG document.
func WriteSVG(w io.Writer, charts []Chart) error {
	var body strings.Builder
	y := 10.0
	for _, c := range charts {
		y = c.draw(&body, y) + chartGap
	}
	var out strings.Builder
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, int(y), svgWidth, int(y))
	fmt.Fprintf(&out, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	out.WriteString(body.String())
	out.WriteString("</svg>\n")
	_, err := io.WriteString(w, out.String())
	return err
}

// draw writes the chart at top y and returns its bottom.
func (c Chart) draw(b *strings.Builder, y float64) float64 {
	fmt.Fprintf(b, `<text x="10" y="%.1f" font-size="15" font-weight="bold">%s</text>`+"\n", y+16, esc(c.Title))
	y += titleSpace
	sc := c.scale()
	top := y
	group := ""
	for _, r := range c.Rows {
		if r.Group != "" && r.Group != group {
			group = r.Group
			fmt.Fprintf(b, `<text x="10" y="%.1f" font-weight="bold" fill="#444">%s</text>`+"\n", y+13, esc(r.Group))
			y += rowHeight
		}
		c.drawRow(b, r, y, sc)
		y += rowHeight
	}
	bottom := y
	// Axis and gridlines.
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", plotLeft, bottom, plotLeft+plotWidth, bottom)
	for _, t := range sc.ticks() {
		x := sc.x(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, top, x, bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>`+"\n", x, bottom+14, esc(num(t)))
	}
	fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="middle" fill="#333">%s</text>`+"\n", plotLeft+plotWidth/2, bottom+28, esc(c.axisLabel()))
	for _, l := range c.Lines {
		if !sc.contains(l.Value) {
			continue
		}
		x := sc.x(l.Value)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d33c3c" stroke-dasharray="4 3"/>`+"\n", x, top-4, x, bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#d33c3c" font-size="11">%s</text>`+"\n", x+3, top-6, esc(l.Label))
	}
	return bottom + axisSpace
}

func (c Chart) axisLabel() string {
	if c.Log {
		return c.Unit + " (log scale)"
	}
	return c.Unit
}

func (c Chart) drawRow(b *strings.Builder, r Row, y float64, sc scale) {
	fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", labelRight, y+13, esc(r.Label))
	if !r.Value.Valid() || !sc.contains(r.Value.Median) {
		note := r.Note
		if note == "" {
			note = "not measured"
		}
		fmt.Fprintf(b, `<text x="%d" y="%.1f" fill="#888" font-style="italic">%s</text>`+"\n", plotLeft+4, y+13, esc(shorten(note, 95)))
		return
	}
	color, ok := palette[r.Color]
	if !ok {
		color = "#999"
	}
	x0, x1 := sc.x(sc.lo), sc.x(r.Value.Median)
	cy := y + rowHeight/2
	fmt.Fprintf(b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, cy-barHeight/2, max(x1-x0, 1), barHeight, color)
	if r.Value.N > 1 && r.Value.Max > r.Value.Min {
		lo, hi := sc.x(r.Value.Min), sc.x(r.Value.Max)
		fmt.Fprintf(b, `<path class="whisker" d="M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f" stroke="#222" fill="none"/>`+"\n",
			lo, cy, hi, lo, cy-4, cy+4, hi, cy-4, cy+4)
	}
	if r.Mark != 0 && sc.contains(r.Mark) {
		x := sc.x(r.Mark)
		fmt.Fprintf(b, `<line class="mark" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-width="2"/>`+"\n", x, y+1, x, y+rowHeight-1)
	}
	label := num(r.Value.Median) + r.Suffix
	if r.LowerBound {
		label = "≥ " + label
	}
	if r.Value.N > 1 && r.Value.Max > r.Value.Min {
		label += fmt.Sprintf(" (%s–%s)", num(r.Value.Min), num(r.Value.Max))
	}
	if r.Mark != 0 {
		label += fmt.Sprintf(", goal %s%s", num(r.Mark), r.Suffix)
	}
	fmt.Fprintf(b, `<text x="%d" y="%.1f" fill="#222">%s</text>`+"\n", valueLeft, y+13, esc(label))
}

// scale maps values to x: linear from 0, or logarithmic.
type scale struct {
	log    bool
	lo, hi float64
}

// scale fits every value, range, mark and line of the chart.
func (c Chart) scale() scale {
	var vs []float64
	for _, r := range c.Rows {
		if r.Value.Valid() {
			vs = append(vs, r.Value.Median, r.Value.Min, r.Value.Max)
		}
		if r.Mark != 0 {
			vs = append(vs, r.Mark)
		}
	}
	for _, l := range c.Lines {
		vs = append(vs, l.Value)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) || (c.Log && v <= 0) {
			continue
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	if math.IsInf(hi, -1) { // nothing measured: any axis will do
		lo, hi = 1, 10
	}
	if c.Log {
		l, h := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if h <= l {
			h = l + 1
		}
		return scale{log: true, lo: math.Pow(10, l), hi: math.Pow(10, h)}
	}
	return scale{lo: 0, hi: niceCeil(hi)}
}

func (s scale) x(v float64) float64 {
	var f float64
	if s.log {
		f = (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	} else {
		f = (v - s.lo) / (s.hi - s.lo)
	}
	return plotLeft + plotWidth*min(max(f, 0), 1)
}

func (s scale) contains(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) || (s.log && v <= 0) {
		return false
	}
	return true
}

// ticks are the decades of a log scale, or five steps of a linear one.
func (s scale) ticks() []float64 {
	var ts []float64
	if s.log {
		for v := s.lo; v <= s.hi*1.0001 && len(ts) < 40; v *= 10 {
			ts = append(ts, v)
		}
		return ts
	}
	step := s.hi / 5
	for i := range 6 {
		ts = append(ts, float64(i)*step)
	}
	return ts
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten (so that a
// fifth of it is round too).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
