package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/emulator"
)

func TestLimitFlagsDefaultsAndValidation(t *testing.T) {
	var errOut bytes.Buffer
	c, err := parseFlags(nil, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.MaxAppendEvents != emulator.DefaultMaxAppendEvents || c.opts.MaxSubscriptions != emulator.DefaultMaxSubscriptions ||
		c.opts.FilterBudget != emulator.DefaultFilterBudget {
		t.Errorf("defaults = %d events, %d subscriptions, %s budget; want the emulator's defaults",
			c.opts.MaxAppendEvents, c.opts.MaxSubscriptions, c.opts.FilterBudget)
	}
	c, err = parseFlags([]string{"--max-append-events", "7", "--max-subscriptions", "3", "--filter-budget", "150ms"}, &errOut)
	if err != nil || c.opts.MaxAppendEvents != 7 || c.opts.MaxSubscriptions != 3 || c.opts.FilterBudget != 150*time.Millisecond {
		t.Errorf("parsed %+v, %v; want 7 events, 3 subscriptions, 150ms", c.opts, err)
	}
	for _, args := range [][]string{
		{"--max-append-events", "0"},
		{"--max-subscriptions", "-1"},
		{"--filter-budget", "0s"},
		{"--filter-budget", "soon"},
	} {
		var out bytes.Buffer
		errOut.Reset()
		if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), strings.TrimLeft(args[0], "-")) {
			t.Errorf("run(%q) = %d with stderr %q, want 2 and a message naming the flag", args, code, errOut.String())
		}
	}
	errOut.Reset()
	if code := run([]string{"-h"}, &bytes.Buffer{}, &errOut); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, flag := range []string{"-max-append-events", "-max-subscriptions", "-filter-budget"} {
		if !strings.Contains(errOut.String(), flag) {
			t.Errorf("--help does not describe %s:\n%s", flag, errOut.String())
		}
	}
}

// TestBinaryLimitFlags checks that the binary applies the limit flags: an
// append over the event cap and a subscription over the subscription cap
// are refused with their status codes.
func TestBinaryLimitFlags(t *testing.T) {
	p := startBinary(t, emulatorBin, "--listen", "127.0.0.1:0", "--max-append-events", "2", "--max-subscriptions", "1")
	c := connect(t, p.uri)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream := "limits-" + uuid.NewString()
	ev := func() kurrentdb.EventData {
		return kurrentdb.EventData{EventID: uuid.New(), EventType: "A", ContentType: kurrentdb.ContentTypeBinary}
	}
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, ev(), ev()); err != nil {
		t.Fatalf("append of 2 events under --max-append-events 2: %v", err)
	}
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, ev(), ev(), ev()); err == nil ||
		!strings.Contains(err.Error(), "more than 2 events") {
		t.Fatalf("append of 3 events = %v, want InvalidArgument naming the cap", err)
	}
	sub, err := c.SubscribeToStream(ctx, stream, kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatalf("first subscription: %v", err)
	}
	defer sub.Close()
	if _, err := c.SubscribeToStream(ctx, stream, kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}}); err == nil ||
		!strings.Contains(err.Error(), "ResourceExhausted") {
		t.Fatalf("second subscription under --max-subscriptions 1 = %v, want ResourceExhausted", err)
	}
	p.stop(t)
}
