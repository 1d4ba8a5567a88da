package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/projector-dev/projector/internal/httpapi"
)

// parkedCommand builds `projector parked` and its subcommands, which ask a running daemon's
// HTTP API (as `projector dead-letters` does, through the same client).
func (a *app) parkedCommand() *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "parked",
		Short: "List, resume and skip parked streams (streams stopped by policy park)",
		Long: `Works on the parked streams (projector_parked) through a running daemon (--server, by default
the local PROJECTOR_HTTP_ADDR). list reads; resume and skip are commands, need the admin token and
run on the replica that leads the projection (a standby refuses: give --server the leader's address).
Exits 1 when the daemon cannot be reached or refuses, 2 on bad arguments.`,
		Args: noArgs,
	}
	cmd.PersistentFlags().StringVar(&server, "server", "", "URL of the daemon's HTTP API (default: the local PROJECTOR_HTTP_ADDR)")
	c := &deadLetterClient{a: a, server: &server}
	cmd.AddCommand(parkedList(c), parkedStreamCommand(c, "resume",
		"Replay the parked events of stream STREAM of projection NAME in order, then go on with the stream",
		`Asks the daemon that leads the projection to replay the stream's parked events through its
handlers, in log order, exactly once, between two batches (before any later event of the stream),
and to unpark the stream. Fix the cause first. If the handler fails again, the events before the
failing one are replayed, the rest stay parked with the new error, and the error is printed (exit 1).`),
		parkedStreamCommand(c, "skip",
			"Move the parked events of stream STREAM of projection NAME to the dead letters, then go on with the stream",
			`Asks the daemon that leads the projection to move the stream's parked events to the dead letters
(projector_dead_letters, each with the error that parked it; see projector dead-letters) and to
unpark the stream: its later events are applied again.`))
	return cmd
}

func parkedList(c *deadLetterClient) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [NAME]",
		Short: "List the parked streams of every projection, or of projection NAME, with the event that parked each",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("usage: %s [NAME]", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/parked"
			if len(args) == 1 {
				path = "/v1/projections/" + url.PathEscape(args[0]) + "/parked"
			}
			var list httpapi.ParkedJSON
			if err := c.do(cmd.Context(), "list parked streams", http.MethodGet, path, "", "", &list); err != nil {
				return err
			}
			if asJSON {
				return writeIndented(c.a.stdout, list)
			}
			if len(list.Parked) == 0 {
				fmt.Fprintln(c.a.stdout, "no parked streams")
				return nil
			}
			tw := tabwriter.NewWriter(c.a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROJECTION\tSTREAM\tEVENTS\tPOSITION\tREVISION\tTYPE\tPARKED AT\tERROR")
			for _, s := range list.Parked {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Projection, s.Stream, s.Events, s.Position, s.Revision, s.EventType,
					s.ParkedAt.Format(time.RFC3339), oneLine(s.Error, 100))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return cmd
}

// parkedStreamCommand builds `projector parked resume|skip NAME STREAM`.
func parkedStreamCommand(c *deadLetterClient, verb, short, long string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   verb + " NAME STREAM",
		Short: short,
		Long:  long,
		Args:  exactArgs(2, "NAME STREAM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, stream := args[0], args[1]
			token, err := c.a.settings.Admin()
			if err != nil {
				return err
			}
			body, err := json.Marshal(map[string]string{"stream": stream})
			if err != nil {
				return err
			}
			var r httpapi.ParkedCommandJSON
			path := "/v1/projections/" + url.PathEscape(name) + "/parked/" + verb
			if err := c.do(cmd.Context(), fmt.Sprintf("%s the parked stream %q of %s", verb, stream, name), http.MethodPost, path, string(body), token, &r); err != nil {
				return err
			}
			if verb == "resume" {
				fmt.Fprintf(c.a.stdout, "resumed stream %s of %s: replayed %d parked event(s)\n", r.Stream, r.Projection, r.Resumed)
			} else {
				fmt.Fprintf(c.a.stdout, "skipped stream %s of %s: moved %d parked event(s) to the dead letters\n", r.Stream, r.Projection, r.Skipped)
			}
			return nil
		},
	}
	c.a.adminTokenFlags(cmd, "the daemon's admin token, sent as a bearer token")
	return cmd
}
