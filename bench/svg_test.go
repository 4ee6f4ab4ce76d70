package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// wellFormed parses an SVG document and counts its elements by class.
func wellFormed(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	classes := map[string]int{}
	d := xml.NewDecoder(bytes.NewReader(doc))
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			for _, a := range se.Attr {
				if a.Name.Local == "class" {
					classes[a.Value]++
				}
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return classes
}

func TestWriteSVG(t *testing.T) {
	charts := []Chart{
		{
			Title: "Delivered <pps> & more",
			Unit:  "packets/s",
			Log:   true,
			Rows: []Row{
				{Group: "100 B, 1 flow", Label: "relaybox XDP", Value: Summary{2e6, 1.8e6, 2.1e6, 3}, Color: XDP, LowerBound: true},
				{Group: "100 B, 1 flow", Label: "coturn", Value: Summary{95e3, 90e3, 99e3, 3}, Color: Coturn},
				{Group: "100 B, 1 flow", Label: "pion/turn", Note: "not measured: pion & co < x"},
				{Group: "1200 B, 1 flow", Label: "coturn", Value: Summary{80e3, 80e3, 80e3, 1}, Color: Coturn},
			},
		},
		{
			Title: "Paths",
			Unit:  "ns",
			Rows: []Row{
				{Label: "floor/mac_swap", Value: Summary{50, 48, 52, 3}},
				{Label: "relay/v4", Value: Summary{90, 88, 95, 3}, Mark: 100},
			},
			Lines: []RefLine{{Value: 100, Label: "2× MAC swap"}},
		},
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, charts); err != nil {
		t.Fatal(err)
	}
	doc := b.Bytes()
	classes := wellFormed(t, doc)
	if classes["bar"] != 5 {
		t.Errorf("%d bars, want 5 (one per row with a value)", classes["bar"])
	}
	// Whiskers only where runs differ.
	if classes["whisker"] != 4 {
		t.Errorf("%d whiskers, want 4", classes["whisker"])
	}
	if classes["mark"] != 1 {
		t.Errorf("%d goal marks, want 1", classes["mark"])
	}
	for _, want := range []string{"Delivered &lt;pps&gt; &amp; more", "not measured: pion &amp; co &lt; x", "≥ 2M (1.8M–2.1M)", "2× MAC swap", "100 B, 1 flow", "1200 B, 1 flow", "(log scale)"} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	for _, bad := range []string{"NaN", "Inf"} {
		if bytes.Contains(doc, []byte(bad)) {
			t.Errorf("SVG contains %q", bad)
		}
	}
	// Each group heading once, though two rows share it.
	if n := strings.Count(string(doc), ">100 B, 1 flow<"); n != 1 {
		t.Errorf("group heading shown %d times, want once", n)
	}
}

func TestScale(t *testing.T) {
	lin := Chart{Rows: []Row{{Value: Summary{37, 30, 41, 3}}}}.scale()
	if lin.log || lin.lo != 0 || lin.hi != 50 {
		t.Errorf("linear scale for 30..41 = %+v, want 0..50", lin)
	}
	if lin.x(0) != plotLeft || lin.x(50) != plotLeft+plotWidth || lin.x(25) != plotLeft+plotWidth/2 {
		t.Errorf("linear x: 0→%g 25→%g 50→%g", lin.x(0), lin.x(25), lin.x(50))
	}
	lg := Chart{Log: true, Rows: []Row{{Value: Summary{95e3, 90e3, 99e3, 3}}, {Value: Summary{2e6, 2e6, 2e6, 1}}}}.scale()
	if !lg.log || lg.lo != 1e4 || lg.hi != 1e7 {
		t.Errorf("log scale for 90k..2M = %+v, want 1e4..1e7", lg)
	}
	if x := lg.x(1e5); math.Abs(x-(plotLeft+plotWidth/3.0)) > 1e-9 {
		t.Errorf("log x(1e5) = %g, want a third of the way", x)
	}
	if got := len(lg.ticks()); got != 4 {
		t.Errorf("log ticks %v, want the 4 decades", lg.ticks())
	}
	// A chart with nothing measured still draws.
	empty := Chart{Log: true, Rows: []Row{{Label: "x"}}}.scale()
	if empty.hi <= empty.lo {
		t.Errorf("empty scale %+v", empty)
	}
	for _, tc := range []struct{ in, want float64 }{{0, 1}, {3, 5}, {41, 50}, {50, 50}, {101, 200}, {220, 250}, {0.7, 1}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%g) = %g, want %g", tc.in, got, tc.want)
		}
	}
}

func TestResultsSVGAndMarkdown(t *testing.T) {
	r := exampleResults()
	var svg, md bytes.Buffer
	if err := r.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	wellFormed(t, svg.Bytes())
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| relaybox user space ≥ 2× coturn, delivered pps | 100 B, 1 flow | 3× (2.5–3.5) | met |",
		"| relaybox user space ≥ 5× pion/turn, delivered pps | 100 B, 1 flow | 3.38× (1.75–5) | missed |",
		"| relaybox XDP ≥ 10× relaybox user space, delivered pps | 100 B, 1 flow | – | not measured | relaybox XDP: relay has no --xdp flag yet |",
		"| every XDP path ≤ 2× MAC swap, Program.Run ns | worst: relay/v4_client_to_v4_peer | 1.6× (1.5–1.7) | met |",
		"| relaybox | 5000 (4000–6000) | – | 2000 |",
		"| relaybox user space | 100 B, 1 flow | ≥ 300k (250k–350k) |",
		"## Whole XDP paths",
		"| whole/v4_client_to_v4_peer | – | 2.75× (2.5–3) |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q\n%s", want, md.String())
		}
	}
}
