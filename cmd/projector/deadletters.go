package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/projector-dev/projector/internal/httpapi"
)

// deadLettersCommand builds `projector dead-letters` and its subcommands, which ask a running
// daemon's HTTP API.
func (a *app) deadLettersCommand() *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "dead-letters",
		Short: "List, show, replay and purge the dead letters (events skipped by policy skip)",
		Long: `Works on projector_dead_letters through a running daemon (--server, by default the local
PROJECTOR_HTTP_ADDR). list and show read; replay and purge are commands and need the admin token.
Exits 1 when the daemon cannot be reached or refuses, 2 on bad arguments.`,
		Args: noArgs,
	}
	cmd.PersistentFlags().StringVar(&server, "server", "", "URL of the daemon's HTTP API (default: the local PROJECTOR_HTTP_ADDR)")
	c := &deadLetterClient{a: a, server: &server}
	cmd.AddCommand(c.listCommand(), c.showCommand(), c.replayCommand(), c.purgeCommand())
	return cmd
}

// deadLetterClient sends the dead-letter requests to the daemon.
type deadLetterClient struct {
	a      *app
	server *string
}

func (c *deadLetterClient) base() (string, error) {
	s := *c.server
	if s == "" {
		s = localURL(c.a.settings.HTTPAddr)
	}
	base := strings.TrimSuffix(s, "/")
	if u, err := url.Parse(base); err != nil || u.Scheme == "" || u.Host == "" {
		return "", usageError{fmt.Errorf("--server %q: want the URL of the daemon's HTTP API, such as http://127.0.0.1:9090", s)}
	}
	return base, nil
}

func (c *deadLetterClient) listCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [NAME]",
		Short: "List the dead letters of every projection, or of projection NAME, in log order",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("usage: %s [NAME]", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/dead-letters"
			if len(args) == 1 {
				path += "?projection=" + url.QueryEscape(args[0])
			}
			token, err := c.a.settings.Admin()
			if err != nil {
				return err
			}
			var list httpapi.DeadLettersJSON
			if err := c.do(cmd.Context(), "list dead letters", http.MethodGet, path, "", token, &list); err != nil {
				return err
			}
			if asJSON {
				return writeIndented(c.a.stdout, list)
			}
			if len(list.DeadLetters) == 0 {
				fmt.Fprintln(c.a.stdout, "no dead letters")
				return nil
			}
			tw := tabwriter.NewWriter(c.a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPROJECTION\tPOSITION\tTYPE\tSTREAM\tFAILED AT\tERROR")
			for _, d := range list.DeadLetters {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", d.ID, d.Projection, d.Position, d.EventType, d.Stream,
					d.FailedAt.Format(time.RFC3339), oneLine(d.Error, 100))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	c.a.adminTokenFlags(cmd, "the daemon's admin token: with it --json includes the events' data")
	return cmd
}

func (c *deadLetterClient) showCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Print dead letter ID as JSON: its event and error (the event's data and metadata with the admin token)",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			token, err := c.a.settings.Admin()
			if err != nil {
				return err
			}
			var d httpapi.DeadLetterJSON
			if err := c.do(cmd.Context(), fmt.Sprintf("show dead letter %d", id), http.MethodGet, fmt.Sprintf("/v1/dead-letters/%d", id), "", token, &d); err != nil {
				return err
			}
			return writeIndented(c.a.stdout, d)
		},
	}
	c.a.adminTokenFlags(cmd, "the daemon's admin token: with it the event's data and metadata are shown")
	return cmd
}

func (c *deadLetterClient) replayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay NAME|ID",
		Short: "Re-apply dead letters through the current handlers (every one of projection NAME, or dead letter ID)",
		Long: `Asks the daemon that leads the projection to re-apply its dead letters (all of projection NAME,
or the one numbered ID) through the projection's current handlers, in log order, exactly once,
in one transaction that also removes them from projector_dead_letters; tracking does not move.
Fix the handler (or the data it needs) first. If a handler still fails, nothing is applied, the
dead letters stay, and the error is printed (exit 1). A standby refuses: give --server the
leader's address.`,
		Args: exactArgs(1, "NAME|ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, body, err := c.target(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var r httpapi.ReplayJSON
			if err := c.command(cmd, "replay", name, body, &r); err != nil {
				return err
			}
			fmt.Fprintf(c.a.stdout, "replayed %d dead letter(s) of %s\n", r.Replayed, r.Projection)
			for _, d := range r.DeadLetters {
				fmt.Fprintf(c.a.stdout, "  %d: event %s (%s) at position %d\n", d.ID, d.EventID, d.EventType, d.Position)
			}
			return nil
		},
	}
	c.a.adminTokenFlags(cmd, "the daemon's admin token, sent as a bearer token")
	return cmd
}

func (c *deadLetterClient) purgeCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "purge NAME|ID --yes",
		Short: "Delete dead letters for good (every one of projection NAME, or dead letter ID)",
		Args:  exactArgs(1, "NAME|ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return usageError{fmt.Errorf("purge %s deletes dead letters for good: add --yes to confirm", args[0])}
			}
			name, body, err := c.target(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var r httpapi.PurgeJSON
			if err := c.command(cmd, "purge", name, body, &r); err != nil {
				return err
			}
			fmt.Fprintf(c.a.stdout, "purged %d dead letter(s) of %s\n", r.Purged, r.Projection)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	c.a.adminTokenFlags(cmd, "the daemon's admin token, sent as a bearer token")
	return cmd
}

// target turns NAME|ID into the projection and the request body: a number is a dead letter's
// id (its projection is asked of the daemon), anything else a projection's name (all of its
// dead letters).
func (c *deadLetterClient) target(ctx context.Context, arg string) (name, body string, err error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		return arg, `{"all":true}`, nil
	}
	if id <= 0 {
		return "", "", usageError{fmt.Errorf("dead letter id %d: want a positive integer", id)}
	}
	var d httpapi.DeadLetterJSON
	if err := c.do(ctx, fmt.Sprintf("dead letter %d", id), http.MethodGet, fmt.Sprintf("/v1/dead-letters/%d", id), "", "", &d); err != nil {
		return "", "", err
	}
	return d.Projection, fmt.Sprintf(`{"id":%d}`, id), nil
}

// command posts the dead-letter command verb for projection name with the admin token.
func (c *deadLetterClient) command(cmd *cobra.Command, verb, name, body string, into any) error {
	token, err := c.a.settings.Admin()
	if err != nil {
		return err
	}
	path := "/v1/projections/" + url.PathEscape(name) + "/dead-letters/" + verb
	return c.do(cmd.Context(), verb+" the dead letters of "+name, http.MethodPost, path, body, token, into)
}

// do sends one request to the daemon and decodes its 200 answer into into; any other answer
// is an error (exit 1) carrying the daemon's message.
func (c *deadLetterClient) do(ctx context.Context, what, method, path, body, token string, into any) error {
	base, err := c.base()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: cannot reach the projector daemon at %s (is it running? give --server URL or set PROJECTOR_HTTP_ADDR to its HTTP address): %w", what, base, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: read the answer of %s: %w", what, base, err)}
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, into); err != nil {
			return &exitError{code: exitFailure, err: fmt.Errorf("%s: %s answered 200 but not with the expected JSON (is it a projector daemon?): %.200s", what, base, b)}
		}
		return nil
	}
	var e httpapi.ErrorJSON
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: %s answered %s (is it a projector daemon?): %.200s", what, base, resp.Status, b)}
	}
	hint := ""
	if resp.StatusCode == http.StatusUnauthorized {
		hint = " (give the daemon's admin token with --admin-token or --admin-token-file, or set PROJECTOR_ADMIN_TOKEN or PROJECTOR_ADMIN_TOKEN_FILE)"
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("%s: the daemon at %s answered %s: %s%s", what, base, resp.Status, e.Error, hint)}
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError{fmt.Errorf("dead letter id %q: want a positive integer", s)}
	}
	return id, nil
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// oneLine returns s on one line, cut to at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
