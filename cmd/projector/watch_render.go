// The figures of status --watch and rebuild --watch (events per second, progress, ETA) from
// consecutive samples, and how they are drawn.

package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
)

// rateWindow is how many consecutive samples the positions rate, and so the ETA, averages.
const rateWindow = 5

// watchRow is one projection in one sample of status --watch.
type watchRow struct {
	httpapi.ProjectionJSON
	// EventsPerSecond is the events applied per second since the previous sample (from the
	// daemon's events-processed counter); valid when HaveRate.
	EventsPerSecond float64
	HaveRate        bool
	// CatchingUp: the projection is catching up and the head is known, so Progress
	// (position / head, 0..1) is meaningful.
	CatchingUp bool
	Progress   float64
	// ETA is when it catches up at the positions rate of the last samples; valid when HaveETA.
	ETA     time.Duration
	HaveETA bool
}

// watchSample is what rates keeps of one projection in one sample.
type watchSample struct {
	at            time.Time
	position      uint64
	processed     float64
	haveProcessed bool
}

// rates turns consecutive samples into rates.
type rates struct {
	samples map[string][]watchSample
}

func newRates() *rates { return &rates{samples: map[string][]watchSample{}} }

// update adds the sample out (with processed, the events-processed counters by projection,
// nil without a daemon) taken at now, and returns its rows.
func (r *rates) update(now time.Time, out httpapi.ListJSON, processed map[string]float64) []watchRow {
	rows := make([]watchRow, 0, len(out.Projections))
	for _, p := range out.Projections {
		n, ok := processed[p.Name]
		cur := watchSample{at: now, position: p.Position, processed: n, haveProcessed: ok}
		hist := append(r.samples[p.Name], cur)
		if len(hist) > rateWindow+1 {
			hist = hist[len(hist)-rateWindow-1:]
		}
		if p.Position < hist[0].position { // reset: the old samples say nothing of the new run
			hist = []watchSample{cur}
		}
		r.samples[p.Name] = hist
		row := watchRow{ProjectionJSON: p}
		if len(hist) > 1 {
			prev := hist[len(hist)-2]
			if dt := now.Sub(prev.at).Seconds(); dt > 0 && prev.haveProcessed && cur.haveProcessed && cur.processed >= prev.processed {
				row.EventsPerSecond, row.HaveRate = (cur.processed-prev.processed)/dt, true
			}
		}
		if p.Head != nil && p.Lag != nil && *p.Lag > 0 && (p.State == projection.StateCatchingUp || p.State == "unknown") {
			row.CatchingUp = true
			if *p.Head > 0 {
				row.Progress = min(float64(p.Position)/float64(*p.Head), 1)
			}
			first := hist[0]
			if dt := now.Sub(first.at).Seconds(); dt > 0 && cur.position > first.position {
				perSecond := float64(cur.position-first.position) / dt
				row.ETA, row.HaveETA = time.Duration(float64(*p.Lag)/perSecond*float64(time.Second)).Round(time.Second), true
			}
		}
		rows = append(rows, row)
		if b := p.Rebuild; b != nil {
			rows = append(rows, buildRow(p.Name, *b))
		}
	}
	return rows
}

// stateBuilding is the state shown on the row of a version building in its shadow schema.
const stateBuilding projection.RunState = "building"

// buildRow is the row of the version b of projection name building in its shadow schema,
// named by its tracking name (NAME@VERSION): its HEAD is the serving version's position, which
// it must reach before the swap, and its progress the share of it reached. Its events/s and ETA
// are the daemon's that builds it (unknown when the figures come from PostgreSQL alone).
func buildRow(name string, b httpapi.RebuildJSON) watchRow {
	target := b.ServingPosition
	lag := target - min(b.Position, target)
	row := watchRow{
		ProjectionJSON:  httpapi.ProjectionJSON{Name: name + "@" + b.Version, State: stateBuilding, Position: b.Position, Head: &target, Lag: &lag},
		EventsPerSecond: b.EventsPerSecond, HaveRate: b.EventsPerSecond > 0 || b.PositionsPerSecond > 0,
		CatchingUp: true,
	}
	if target > 0 {
		row.Progress = min(float64(b.Position)/float64(target), 1)
	}
	if b.ETASeconds != nil {
		row.ETA, row.HaveETA = time.Duration(*b.ETASeconds*float64(time.Second)).Round(time.Second), true
	}
	return row
}

// progressBar draws fraction (0..1) as a bar width characters wide between brackets.
func progressBar(fraction float64, width int) string {
	fraction = min(max(fraction, 0), 1)
	full := int(fraction*float64(width) + 0.5)
	return "[" + strings.Repeat("#", full) + strings.Repeat("-", width-full) + "]"
}

// barWidth is the width of the progress bars on a terminal columns wide.
func barWidth(columns int) int { return min(max(columns-90, 10), 40) }

// eps formats an events-per-second figure ("-" when unknown).
func (r watchRow) eps() string {
	if !r.HaveRate {
		return "-"
	}
	return strconv.FormatFloat(r.EventsPerSecond, 'f', 0, 64)
}

// eta formats the time left ("-" when unknown).
func (r watchRow) eta() string {
	if !r.HaveETA {
		return "-"
	}
	return r.ETA.String()
}

// writeTable writes the rows as the terminal table of columns width under title: the status
// table with events per second, ETA and a progress bar for each projection catching up and
// each version building.
func writeTable(b *strings.Builder, title string, now time.Time, rows []watchRow, live bool, columns int) {
	fmt.Fprintf(b, "%s   %s   (Ctrl-C to stop)\n\n", title, now.Format(time.TimeOnly))
	tw := tabwriter.NewWriter(b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPOSITION\tHEAD\tLAG\tEVENTS/S\tETA\tPROGRESS")
	for _, r := range rows {
		progress := ""
		if r.CatchingUp {
			progress = fmt.Sprintf("%s %5.1f%%", progressBar(r.Progress, barWidth(columns)), 100*r.Progress)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.State, r.Position, optional(r.Head), optional(r.Lag), r.eps(), r.eta(), progress)
	}
	_ = tw.Flush()
	if !live {
		b.WriteString("\nno daemon answers: state unknown, no events/s\n")
	}
	for _, r := range rows {
		if line := problem(r.ProjectionJSON); line != "" {
			fmt.Fprintf(b, "\n%s %s: %s", r.Name, r.State, line)
		}
	}
}

// writeLines writes the rows as one line per projection, for output that is not a terminal.
func writeLines(b *strings.Builder, now time.Time, rows []watchRow) {
	for _, r := range rows {
		fmt.Fprintf(b, "%s %s state=%s position=%d head=%s lag=%s events/s=%s eta=%s", now.UTC().Format(time.RFC3339),
			r.Name, r.State, r.Position, optional(r.Head), optional(r.Lag), r.eps(), r.eta())
		if r.CatchingUp {
			fmt.Fprintf(b, " progress=%.1f%%", 100*r.Progress)
		}
		b.WriteByte('\n')
	}
}
