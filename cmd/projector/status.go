// projector status: the projections' state from the daemon or the database.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres"
)

func (a *app) statusCommand() *cobra.Command {
	var asJSON, watch bool
	var server string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each projection's position, lag and state",
		Long: `Prints each configured projection's position (from PostgreSQL), the head of $all, the lag and
the run state. State, leadership and the head come from the daemon's HTTP API when it answers
(--server, by default the local PROJECTOR_HTTP_ADDR); otherwise the head is read from KurrentDB
when KURRENTDB_URI is set and the state is "unknown". With --watch it redraws the table every
second until Ctrl-C, with the events per second, the ETA and a progress bar (position / head) of
each projection catching up; when stdout is not a terminal it prints a line per projection and
second instead.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if watch && asJSON {
				return usageError{errors.New("--watch and --json cannot be combined: --watch draws a table")}
			}
			log, cfg, err := a.loggerAndConfig()
			if err != nil {
				return err
			}
			_, store, closeDB, err := a.openStore(ctx, log, false)
			if err != nil {
				return err
			}
			defer closeDB()
			if server == "" {
				server = localURL(a.settings.HTTPAddr)
			}
			if watch {
				return a.watchStatus(ctx, log, cfg, store, server)
			}
			live := fetchDaemon(ctx, server)
			out, err := a.statusReport(ctx, log, cfg, store, live)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			return a.printStatus(out, live != nil)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.Flags().BoolVar(&watch, "watch", false, "redraw every second until Ctrl-C, with events/s, ETA and progress bars")
	cmd.Flags().StringVar(&server, "server", "", "URL of a running daemon's HTTP API (default: the local PROJECTOR_HTTP_ADDR)")
	return cmd
}

// statusReport combines each configured projection's tracking row with what the running daemon
// (live, nil when it does not answer) reports, and the head of $all from the daemon or, failing
// that, from KurrentDB.
func (a *app) statusReport(ctx context.Context, log *zap.Logger, cfg *config.Config, store *postgres.Store, live *httpapi.ListJSON) (httpapi.ListJSON, error) {
	var head uint64
	var haveHead bool
	if live != nil && live.Head != nil {
		head, haveHead = *live.Head, true
	} else if a.settings.KurrentDBURI != "" {
		var err error
		head, haveHead, err = a.readHead(ctx)
		if err != nil {
			log.Warn("cannot read the head of $all", zap.Error(err))
		}
	}
	out := httpapi.ListJSON{Projections: []httpapi.ProjectionJSON{}}
	if haveHead {
		out.Head = &head
	}
	leaders, err := postgres.GroupLeaders(ctx, store.Pool(), 0)
	if err != nil {
		log.Warn("cannot read which replica leads each projection", zap.Error(err))
	}
	parked, err := postgres.CountParkedStreams(ctx, store.Pool())
	if err != nil {
		return out, err
	}
	for _, p := range cfg.Projections {
		store.SetPartitions(p.Name, p.Options.Partitions)
		if err := servingPartitions(ctx, store, p.Name); err != nil {
			return out, err
		}
		st, ok, err := store.LoadProjection(ctx, p.Name)
		if err != nil {
			return out, err
		}
		s := projection.Status{Name: p.Name, State: "unknown", Tracking: st, Position: st.Reached()}
		var rebuild *httpapi.RebuildJSON
		if !ok {
			s.State = "not_started"
		}
		s.LeaderMember = leaders[p.Name]
		if live != nil {
			for _, lp := range live.Projections {
				if lp.Name == p.Name {
					s.State, s.Leader, s.CaughtUp, s.Failed, s.Error = lp.State, lp.Leader, lp.CaughtUp, lp.Failed, lp.Error
					rebuild = lp.Rebuild
					if lp.LeaderMember != "" {
						s.LeaderMember = lp.LeaderMember
					}
					if lp.LastProgress != nil {
						s.LastProgress = *lp.LastProgress
					}
				}
			}
		}
		j := httpapi.ProjectionJSON{Name: s.Name, Position: s.Position, State: s.State, Leader: s.Leader, LeaderMember: s.LeaderMember,
			CaughtUp: s.CaughtUp, Tracking: st, Failed: s.Failed, Error: s.Error, Rebuild: rebuild, ParkedStreams: int(parked[p.Name])}
		if j.Rebuild == nil {
			if j.Rebuild, err = storedRebuild(ctx, store, p.Name, s.Position); err != nil {
				return out, err
			}
		}
		if haveHead {
			lag := s.Lag(head, true, time.Now())
			h, l := head, lag.Positions
			j.Head, j.Lag = &h, &l
		}
		out.Projections = append(out.Projections, j)
	}
	return out, nil
}

// printStatus writes out as a table, then the problem of each stopped or retrying projection.
// The leader column is "-" unless a daemon answered (live); the led-by column names the replica
// (member) that leads the projection, from the daemon or the membership table, "-" when unknown.
func (a *app) printStatus(out httpapi.ListJSON, live bool) error {
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPOSITION\tHEAD\tLAG\tSTATE\tLEADER\tLED BY")
	for _, p := range out.Projections {
		leader := "-"
		if live {
			leader = strconv.FormatBool(p.Leader)
		}
		ledBy := p.LeaderMember
		if ledBy == "" {
			ledBy = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Position, optional(p.Head), optional(p.Lag), p.State, leader, ledBy)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range out.Projections {
		if r := p.Rebuild; r != nil {
			fmt.Fprintf(a.stdout, "\n%s: %s\n", p.Name, describeRebuild(*r))
		}
	}
	for _, p := range out.Projections {
		if p.ParkedStreams > 0 {
			fmt.Fprintf(a.stdout, "\n%s: %d parked stream(s) (policy park): `projector parked list %s` shows them\n", p.Name, p.ParkedStreams, p.Name)
		}
	}
	for _, p := range out.Projections {
		if line := problem(p); line != "" {
			fmt.Fprintf(a.stdout, "\n%s %s: %s", p.Name, p.State, line)
		}
	}
	return nil
}

// problem describes why projection p is stopped or retrying (with a newline), or "".
func problem(p httpapi.ProjectionJSON) string {
	var b strings.Builder
	if f := p.Failed; f != nil {
		fmt.Fprintf(&b, "on event %s (type %q) at position %d in stream %q revision %d: %s\n", f.EventID, f.Type, f.Position.Commit, f.Stream, f.Revision, f.Error)
		if p.State == projection.StateStopped {
			fmt.Fprintf(&b, "  fix the view, then `projector resume %s` retries the event; `projector skip %s` skips it (dead letter)\n", p.Name, p.Name)
		}
		return b.String()
	}
	if p.Error != "" {
		return p.Error + "\n"
	}
	return ""
}

func optional(v *uint64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatUint(*v, 10)
}

// localURL turns a listen address such as ":9090" into a URL on the local host.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// fetchDaemon reads a running daemon's /v1/projections; nil when it does not answer.
func fetchDaemon(ctx context.Context, server string) *httpapi.ListJSON {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+"/v1/projections", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var l httpapi.ListJSON
	if json.NewDecoder(resp.Body).Decode(&l) != nil {
		return nil
	}
	return &l
}
