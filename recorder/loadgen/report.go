package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteReport writes a Markdown capacity table of several runs measured
// with GatewayPID (scripts/perf.sh): one table per media mix, one row per
// run ordered by sessions, then the highest load without loss.
func WriteReport(w io.Writer, results []*Result) error {
	groups := map[string][]*Result{}
	var order []string
	for _, r := range results {
		k := mediaMix(r)
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(len(a), len(b)) })
	for _, k := range order {
		rs := groups[k]
		slices.SortStableFunc(rs, func(a, b *Result) int { return cmp.Compare(a.Config.Sessions, b.Config.Sessions) })
		fmt.Fprintf(w, "**%s**, %g s per session\n\n", k, rs[0].Config.DurationSeconds)
		fmt.Fprintln(w, "| sessions | connected | gateway CPU µs / received packet | gateway CPU cores | RSS per session (total / added) | packets sent | not recorded (kernel drops) | part seal p99 | setup p99 | machine: load generator / other cores |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		best := -1
		for _, r := range rs {
			g := r.Gateway
			if g == nil {
				g = &GatewayStats{Problems: []string{"not measured"}}
			}
			lost, sent := notRecorded(r)
			kernel := g.UDPRcvbufErrors + g.UDPInErrors
			fmt.Fprintf(w, "| %d | %d | %s | %.2f | %.0f / %.0f KiB | %d | %s (%d) | %.1f ms | %.0f ms | %.2f / %.2f |\n",
				r.Config.Sessions, r.Sessions.Connected, orDash(g.CPUMicrosPerPacket, "%.1f"), g.CPUCores,
				g.RSSPerSessionKiB, g.RSSAddedPerSessionKiB, sent, lostCell(r, lost), kernel,
				g.SealP99MS, r.Setup.P99MS, g.LoadgenCores, g.OtherCores)
			if clean(r) {
				best = max(best, r.Config.Sessions)
			}
		}
		fmt.Fprintln(w)
		if best > 0 {
			fmt.Fprintf(w, "Highest load with every session connected and nothing lost: **%d sessions**.\n\n", best)
		} else {
			fmt.Fprintf(w, "No run had every session connected and nothing lost.\n\n")
		}
		for _, r := range rs {
			if r.Gateway != nil {
				for _, p := range r.Gateway.Problems {
					fmt.Fprintf(w, "- %d sessions: not measured: %s\n", r.Config.Sessions, p)
				}
			}
		}
	}
	return nil
}

// mediaMix names a run's media ("audio only (calls-long.ogg)").
func mediaMix(r *Result) string {
	switch {
	case r.Config.Video != "" && r.Config.Audio != "":
		return fmt.Sprintf("Audio + VP8 (%s, %s)", r.Config.Audio, r.Config.Video)
	case r.Config.Video != "":
		return fmt.Sprintf("VP8 only (%s)", r.Config.Video)
	}
	return fmt.Sprintf("Audio only (%s)", r.Config.Audio)
}

// notRecorded returns the packets sent but not in the recordings, and the
// packets sent.
func notRecorded(r *Result) (int64, uint64) {
	if r.Recordings == nil {
		return -1, r.Packets.Sent
	}
	return r.Recordings.Missing, r.Packets.Sent
}

func lostCell(r *Result, lost int64) string {
	if lost < 0 {
		return "not read back"
	}
	if t := r.Recordings; t != nil && (t.NotFound > 0 || t.Failed > 0) {
		return fmt.Sprintf("%d, %d recordings failed or missing", lost, t.NotFound+t.Failed)
	}
	return fmt.Sprint(lost)
}

// clean reports whether every session connected and every packet sent
// was recorded.
func clean(r *Result) bool {
	t := r.Recordings
	return r.Sessions.Connected == r.Config.Sessions && t != nil && t.Missing == 0 && t.PacketsLost == 0 &&
		t.NotFound == 0 && t.Failed == 0
}

func orDash(v float64, format string) string {
	if v <= 0 {
		return "–"
	}
	return strings.TrimSpace(fmt.Sprintf(format, v))
}
