package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/projector-dev/projector/internal/httpapi"
)

// controlCommand builds `projector resume` and `projector skip`, which send the command to a
// running daemon's HTTP API.
func (a *app) controlCommand(verb string) *cobra.Command {
	var server string
	short, long := "Retry the event a stopped projection halted on",
		`Asks the running daemon (--server, by default the local PROJECTOR_HTTP_ADDR) to resume projection
NAME, stopped on a poison event: the event is retried under the projection's error policy, so
fix the view (or the data it needs) first. Only the replica that leads the projection has it
stopped; a standby refuses. Prints the projection's new state; exits 1 when the daemon cannot be
reached or refuses (the projection is not stopped there), 2 on bad arguments.`
	if verb == "skip" {
		short, long = "Skip the event a stopped projection halted on (into the dead letters)",
			`Asks the running daemon (--server, by default the local PROJECTOR_HTTP_ADDR) to restart projection
NAME, stopped on a poison event, past that event: the event is written to projector_dead_letters
with its error, and processing goes on. Only the replica that leads the projection has it
stopped; a standby refuses. Prints the projection's new state; exits 1 when the daemon cannot be
reached or refuses (the projection is not stopped there), 2 on bad arguments.`
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Long:  long,
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if server == "" {
				server = localURL(a.settings.HTTPAddr)
			}
			token, err := a.settings.Admin()
			if err != nil {
				return err
			}
			p, err := sendCommand(cmd.Context(), server, verb, args[0], token)
			var ue usageError
			switch {
			case errors.As(err, &ue):
				return err
			case err != nil:
				return &exitError{code: exitFailure, err: err}
			}
			fmt.Fprintf(a.stdout, "%s %s: accepted; it is now %s at position %d\n", verb, p.Name, p.State, p.Position)
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "URL of the daemon's HTTP API (default: the local PROJECTOR_HTTP_ADDR)")
	a.adminTokenFlags(cmd, "the daemon's admin token, sent as a bearer token")
	return cmd
}

// adminTokenFlags adds --admin-token and --admin-token-file to cmd; what says what the token
// is for.
func (a *app) adminTokenFlags(cmd *cobra.Command, what string) {
	a.envFlag(cmd.Flags(), "admin-token", what)
	a.envFlag(cmd.Flags(), "admin-token-file", "file holding the admin token, e.g. a mounted Secret")
}

// sendCommand posts verb for projection name to the daemon at server, with token as a bearer
// token unless it is empty, and returns the projection's status after it.
func sendCommand(ctx context.Context, server, verb, name, token string) (httpapi.ProjectionJSON, error) {
	var p httpapi.ProjectionJSON
	base := strings.TrimSuffix(server, "/")
	if u, err := url.Parse(base); err != nil || u.Scheme == "" || u.Host == "" {
		return p, usageError{fmt.Errorf("--server %q: want the URL of the daemon's HTTP API, such as http://127.0.0.1:9090", server)}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/projections/"+url.PathEscape(name)+"/"+verb, nil)
	if err != nil {
		return p, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return p, fmt.Errorf("%s %s: cannot reach the projector daemon at %s (is it running? give --server URL or set PROJECTOR_HTTP_ADDR to its HTTP address): %w", verb, name, base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return p, fmt.Errorf("%s %s: read the answer of %s: %w", verb, name, base, err)
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &p); err != nil || p.Name == "" {
			return p, fmt.Errorf("%s %s: %s answered 200 but not with a projection's status (is it a projector daemon?): %.200s", verb, name, base, body)
		}
		return p, nil
	}
	var e httpapi.ErrorJSON
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return p, fmt.Errorf("%s %s: %s answered %s (is it a projector daemon?): %.200s", verb, name, base, resp.Status, body)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if token == "" {
			return p, fmt.Errorf("%s %s: the daemon at %s requires the admin token: give it with --admin-token or --admin-token-file, or set PROJECTOR_ADMIN_TOKEN or PROJECTOR_ADMIN_TOKEN_FILE (%s)", verb, name, base, e.Error)
		}
		return p, fmt.Errorf("%s %s: the daemon at %s refused the admin token given (--admin-token, --admin-token-file, PROJECTOR_ADMIN_TOKEN or PROJECTOR_ADMIN_TOKEN_FILE): it is not the daemon's (%s)", verb, name, base, e.Error)
	case http.StatusForbidden:
		return p, fmt.Errorf("%s %s: the daemon at %s refused: %s", verb, name, base, e.Error)
	case http.StatusNotFound:
		return p, fmt.Errorf("%s %s: the daemon at %s has no such projection: %s", verb, name, base, e.Error)
	case http.StatusConflict:
		return p, fmt.Errorf("%s %s: the daemon at %s refused: %s", verb, name, base, e.Error)
	case http.StatusServiceUnavailable:
		return p, fmt.Errorf("%s %s: the daemon at %s cannot take commands now: %s", verb, name, base, e.Error)
	}
	return p, errors.New(verb + " " + name + ": the daemon at " + base + " answered " + resp.Status + ": " + e.Error)
}
