// Package report turns the trials of the VIP benchmark (package bench/vip)
// into its results: summary statistics (p50/p95/max), the raw CSV, the
// Markdown note (bench/results/latest.md) and SVG plots of the outage CDF per
// scenario, one line per system, drawn by a small renderer of its own (no
// plotting dependency).
//
// It knows nothing about labs or systems beyond their names: a Trial is a
// row of measured figures, a Footprint a process group's RSS and idle CPU.
package report
