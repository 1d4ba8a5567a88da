// projector status --watch: the status table redrawn every second until Ctrl-C, with the
// progress, events per second and ETA of each projection that is catching up.

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/metrics"
	"github.com/projector-dev/projector/views/postgres"
)

// watchInterval is how often status --watch samples and redraws.
const watchInterval = time.Second

// watchStatus samples the status every watchInterval and draws it on a.stdout until ctx ends
// (Ctrl-C): redrawn in place on a terminal, a line per projection and sample otherwise.
func (a *app) watchStatus(ctx context.Context, log *zap.Logger, cfg *config.Config, store *postgres.Store, server string) error {
	scr := newScreen(a.stdout, "projector status --watch")
	defer scr.close()
	rates := newRates()
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		live := fetchDaemon(ctx, server)
		var processed map[string]float64
		if live != nil {
			processed = fetchProcessed(ctx, server)
		}
		out, err := a.statusReport(ctx, log, cfg, store, live)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		now := time.Now()
		if err := scr.draw(now, rates.update(now, out, processed), live != nil); err != nil {
			return fmt.Errorf("status --watch: write: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// fetchProcessed reads the events-processed counter of each projection from a running
// daemon's /metrics; nil when it does not answer.
func fetchProcessed(ctx context.Context, server string) map[string]float64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+"/metrics", nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	fam := families[metrics.EventsProcessed]
	if fam == nil {
		return nil
	}
	out := map[string]float64{}
	for _, m := range fam.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "projection" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// screen draws the samples: in place with ANSI escape codes on a terminal, as lines otherwise.
type screen struct {
	w     io.Writer
	title string // the first line of the terminal table
	tty   bool
	fd    int
	drawn bool
}

// The ANSI escape codes the terminal drawing uses.
const (
	ansiHideCursor = "\x1b[?25l"
	ansiShowCursor = "\x1b[?25h"
	ansiClear      = "\x1b[2J"
	ansiHome       = "\x1b[H"
	ansiClearLine  = "\x1b[K" // to the end of the line
	ansiClearBelow = "\x1b[J" // to the end of the screen
)

// newScreen returns the screen of w, titled title: a terminal when w is one.
func newScreen(w io.Writer, title string) *screen {
	s := &screen{w: w, title: title}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.tty, s.fd = true, int(f.Fd())
	}
	return s
}

// width is the terminal's width in columns (80 when unknown).
func (s *screen) width() int {
	if s.tty {
		if w, _, err := term.GetSize(s.fd); err == nil && w > 0 {
			return w
		}
	}
	return 80
}

// draw writes one sample: on a terminal the table redrawn over the last one, otherwise a line
// per projection.
func (s *screen) draw(now time.Time, rows []watchRow, live bool) error {
	var b strings.Builder
	if !s.tty {
		writeLines(&b, now, rows)
		_, err := io.WriteString(s.w, b.String())
		return err
	}
	if !s.drawn {
		b.WriteString(ansiHideCursor + ansiClear)
		s.drawn = true
	}
	b.WriteString(ansiHome)
	var table strings.Builder
	writeTable(&table, s.title, now, rows, live, s.width())
	for line := range strings.Lines(table.String()) {
		b.WriteString(strings.TrimSuffix(line, "\n") + ansiClearLine + "\n")
	}
	b.WriteString(ansiClearBelow)
	_, err := io.WriteString(s.w, b.String())
	return err
}

// close gives the terminal its cursor back (once: a later draw starts a new screen).
func (s *screen) close() {
	if s.tty && s.drawn {
		_, _ = io.WriteString(s.w, ansiShowCursor)
		s.drawn = false
	}
}
