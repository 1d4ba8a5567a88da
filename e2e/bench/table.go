package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report as one table: the log's figures, then a column per form.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k string, v ...string) { fmt.Fprintf(tw, "%s\t%s\n", k, strings.Join(v, "\t")) }
	m := r.Machine
	line("machine", fmt.Sprintf("%d CPUs, %.1f GiB memory, %s, %s, PostgreSQL %s", m.NProc, float64(m.MemTotal)/(1<<30), m.GoVersion, m.OS, m.PostgreSQL))
	line("load average", fmt.Sprintf("%s at start, %s at end", m.LoadStart, m.LoadEnd))
	c := r.Counts
	line("events", fmt.Sprintf("%s, %s of the projections' topics (%s registrations, %s tricks)", thousands(c.Events), thousands(c.Handled), thousands(c.Registered), thousands(c.Tricks)))
	line("seed (appends)", rate(r.Seed))
	if r.PGLatency > 0 {
		line("daemon to PostgreSQL", fmt.Sprintf("through a proxy adding %v each way", r.PGLatency))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v func(f *FormReport) string) {
		cells := make([]string, len(r.Forms))
		for i, f := range r.Forms {
			cells[i] = v(f)
		}
		line(k, cells...)
	}
	row("", func(f *FormReport) string { return f.Name })
	row("projections files", func(f *FormReport) string { return strings.Join(f.Config, ", ") })
	row("daemon catch-up", func(f *FormReport) string { return rate(f.CatchUp) })
	row("  all events of the log", func(f *FormReport) string { return rate(f.CatchUpAll) })
	row("  once leading (as the ceiling)", func(f *FormReport) string {
		return fmt.Sprintf("%s; start-up %.2fs", rate(f.CatchUpLeading), f.StartUp.Seconds())
	})
	row("PostgreSQL ceiling (replay)", func(f *FormReport) string { return rate(f.Ceiling) })
	row("one transaction per event", func(f *FormReport) string { return rate(f.Naive) })
	row("daemon / ceiling", func(f *FormReport) string {
		return fmt.Sprintf("%.2f from its start, %.2f once leading", f.Ratios().DaemonOverCeiling, f.Ratios().LeadingOverCeiling)
	})
	row("ceiling / one tx per event", func(f *FormReport) string { return fmt.Sprintf("%.2f", f.Ratios().CeilingOverNaive) })
	row("daemon / one tx per event", func(f *FormReport) string { return fmt.Sprintf("%.2f", f.Ratios().DaemonOverNaive) })
	row("daemon CPU (catch-up)", func(f *FormReport) string {
		return fmt.Sprintf("%.2fs, %.2f µs per event per projection", f.DaemonCPU.Seconds(), f.CPUPerEvent(c.Events))
	})
	row("emulator CPU (catch-up)", func(f *FormReport) string {
		if c.Events == 0 {
			return ""
		}
		return fmt.Sprintf("%.2fs, %.2f µs per event", f.EmulatorCPU.Seconds(), float64(f.EmulatorCPU.Microseconds())/float64(c.Events))
	})
	row("daemon peak RSS", func(f *FormReport) string {
		return fmt.Sprintf("%s catch-up, %s live", mib(f.PeakRSSCatchUp), mib(f.PeakRSSLive))
	})
	row("read-your-writes, every projection", func(f *FormReport) string { return latency(f.ReadYourAll) })
	if len(r.Forms) > 0 {
		for i := range r.Forms[0].Projections {
			row(fmt.Sprintf("read-your-writes, projection %d", i+1), func(f *FormReport) string {
				if i >= len(f.Projections) {
					return ""
				}
				return f.Projections[i] + ": " + latency(f.ReadYourWrites[f.Projections[i]])
			})
		}
	}
	row("append alone", func(f *FormReport) string { return latency(f.Appends) })
	for _, k := range []string{"daemon", "ceiling", "naive"} {
		row("verified "+k, func(f *FormReport) string { return f.Verified[k] })
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cmp := range r.Comparisons() {
		line(fmt.Sprintf("catch-up %s / %s", cmp.Form, cmp.Over), fmt.Sprintf("%.2f", cmp.CatchUp))
	}
	line("peak RSS bound", fmt.Sprintf("%s (highest peak %s)", mib(r.RSSBound), mib(r.PeakRSS())))
	return tw.Flush()
}

// latency formats a latency summary.
func latency(l Latency) string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s (%d rounds)", ms(l.P50), ms(l.P99), ms(l.Max), l.N)
}

// formJSON is a form's figures with its ratios and CPU time per event, as WriteJSON writes it.
type formJSON struct {
	*FormReport
	Ratios            Ratios  `json:"ratios"`
	CPUPerEvent       float64 `json:"daemon_cpu_us_per_event_per_projection"`
	CPUPerTopicsEvent float64 `json:"daemon_cpu_us_per_event_of_the_topics_per_projection"`
}

// WriteJSON writes the report as indented JSON to path, with each form's ratios and CPU time
// per event and the comparisons of the forms.
func (r *Report) WriteJSON(path string) error {
	forms := make([]formJSON, len(r.Forms))
	for i, f := range r.Forms {
		forms[i] = formJSON{f, f.Ratios(), f.CPUPerEvent(r.Counts.Events), f.CPUPerEvent(r.Counts.Handled)}
	}
	b, err := json.MarshalIndent(struct {
		*Report
		Forms       []formJSON   `json:"forms"`
		Comparisons []Comparison `json:"comparisons"`
		PeakRSS     int64        `json:"peak_rss_bytes"`
	}{r, forms, r.Comparisons(), r.PeakRSS()}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}
