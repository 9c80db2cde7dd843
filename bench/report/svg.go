package report

import (
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Series is one line of a CDF plot.
type Series struct {
	Name   string
	Values []time.Duration
}

// palette holds distinguishable colours for up to eight series (then it
// repeats).
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// CDFSVG writes an SVG plot of the empirical CDF of each series (x: seconds,
// linear from 0 to a round value above the largest one; y: fraction of
// trials) with a legend giving each series' trial count. Empty series are
// listed in the legend as "no trials".
func CDFSVG(w io.Writer, title string, series []Series) error {
	const (
		width, height         = 720, 420
		left, right, top, bot = 64, 190, 40, 50
		plotW, plotH          = width - left - right, height - top - bot
		fontAttr              = `font-family="sans-serif" font-size="12"`
	)
	var maxV time.Duration
	for _, s := range series {
		for _, v := range s.Values {
			if v > maxV {
				maxV = v
			}
		}
	}
	xmax := niceCeil(maxV.Seconds())
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-family="sans-serif" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	x := func(sec float64) float64 { return left + sec/xmax*plotW }
	y := func(frac float64) float64 { return top + (1-frac)*plotH }
	// Grid and ticks.
	for i := 0; i <= 5; i++ {
		sec := xmax * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(sec), top, x(sec), top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" %s text-anchor="middle">%s</text>`+"\n", x(sec), top+plotH+16, fontAttr, trimFloat(sec))
		frac := float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(frac), left+plotW, y(frac))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" %s text-anchor="end">%s</text>`+"\n", left-6, y(frac)+4, fontAttr, trimFloat(frac))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>`+"\n", left, top, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s text-anchor="middle">client-visible outage (s)</text>`+"\n", left+plotW/2, height-12, fontAttr)
	fmt.Fprintf(&b, `<text x="16" y="%d" %s text-anchor="middle" transform="rotate(-90 16 %d)">fraction of trials</text>`+"\n", top+plotH/2, fontAttr, top+plotH/2)
	for i, s := range series {
		col := palette[i%len(palette)]
		vals := append([]time.Duration(nil), s.Values...)
		sort.Slice(vals, func(a, c int) bool { return vals[a] < vals[c] })
		if len(vals) > 0 {
			// A step function: 0 until the first value, +1/n at each value.
			pts := []string{fmt.Sprintf("%.1f,%.1f", x(0), y(0))}
			for j, v := range vals {
				sec := v.Seconds()
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(sec), y(float64(j)/float64(len(vals)))))
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(sec), y(float64(j+1)/float64(len(vals)))))
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(xmax), y(1)))
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		}
		ly := top + 14 + i*20
		label := fmt.Sprintf("%s (n=%d)", s.Name, len(vals))
		if len(vals) == 0 {
			label = s.Name + " (no trials)"
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", left+plotW+12, ly-4, left+plotW+32, ly-4, col)
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s>%s</text>`+"\n", left+plotW+38, ly, fontAttr, html.EscapeString(label))
	}
	b.WriteString("</svg>\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write svg: %w", err)
	}
	return nil
}

// niceCeil returns 1, 2 or 5 times a power of ten at or above v (0.1 for
// v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0.1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(f float64) string {
	s := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
	if s == "" || s == "-0" {
		return "0"
	}
	return s
}
