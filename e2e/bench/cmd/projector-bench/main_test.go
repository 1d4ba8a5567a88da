package main

import (
	"bytes"
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/e2e/bench"
)

func TestDefaults(t *testing.T) {
	f, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := f.opts
	if o.Workload.Events != 1_000_000 || o.NaiveEvents != 20_000 || o.Rounds != 300 || o.MaxRSS != 100<<20 || o.BinDir != "" {
		t.Errorf("defaults %+v", o)
	}
	want := []bench.Form{
		{Name: "per-event", Configs: []string{"examples/training_school.yaml", "examples/dog_counts.yaml"}},
		{Name: "batch", Configs: []string{"examples/training_school_batch.yaml", "examples/dog_counts_batch.yaml"}},
	}
	if !reflect.DeepEqual(o.Forms, want) {
		t.Errorf("forms %+v, want %+v", o.Forms, want)
	}
	if len(o.Checks) == 0 {
		t.Error("no view checks")
	}
}

func TestFlags(t *testing.T) {
	f, err := parseFlags([]string{"-events", "50000", "-config", " a.yaml, ,b.yaml ", "-max-rss", "64", "-bin", "bin", "-catch-up-timeout", "1m",
		"-daemon-env", "PROJECTOR_SHARED_READ=off", "-daemon-env", "GOGC=100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []bench.Form{{Name: "custom", Configs: []string{"a.yaml", "b.yaml"}}}
	if f.opts.Workload.Events != 50000 || !reflect.DeepEqual(f.opts.Forms, want) || f.opts.MaxRSS != 64<<20 || f.opts.BinDir != "bin" || f.opts.CatchUpTime != time.Minute ||
		!reflect.DeepEqual(f.opts.DaemonEnv, []string{"PROJECTOR_SHARED_READ=off", "GOGC=100"}) {
		t.Errorf("parsed %+v", f.opts)
	}
}

func TestFormFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []bench.Form
	}{
		{[]string{"-batch-config", "c.yaml"}, []bench.Form{
			{Name: "per-event", Configs: []string{"examples/training_school.yaml", "examples/dog_counts.yaml"}},
			{Name: "batch", Configs: []string{"c.yaml"}},
		}},
		{[]string{"-batch-config", ""}, []bench.Form{
			{Name: "per-event", Configs: []string{"examples/training_school.yaml", "examples/dog_counts.yaml"}},
		}},
		{[]string{"-config", "a.yaml", "-batch-config", "c.yaml,d.yaml"}, []bench.Form{
			{Name: "per-event", Configs: []string{"a.yaml"}},
			{Name: "batch", Configs: []string{"c.yaml", "d.yaml"}},
		}},
	} {
		f, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !reflect.DeepEqual(f.opts.Forms, tc.want) {
			t.Errorf("%v: forms %+v, want %+v", tc.args, f.opts.Forms, tc.want)
		}
	}
}

func TestPartitionFlags(t *testing.T) {
	f, err := parseFlags([]string{"-partitions", "1, 2,4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ts := []string{"examples/training_school.yaml"}
	want := []bench.Form{{Name: "partitions=1", Configs: ts, Partitions: 1}, {Name: "partitions=2", Configs: ts, Partitions: 2}, {Name: "partitions=4", Configs: ts, Partitions: 4}}
	if !reflect.DeepEqual(f.opts.Forms, want) {
		t.Errorf("forms %+v, want %+v", f.opts.Forms, want)
	}
	for _, bad := range []string{"0", "x", "1,300", " , "} {
		if _, err := parseFlags([]string{"-partitions", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "-partitions") {
			t.Errorf("-partitions %q: %v, want an error naming the flag", bad, err)
		}
	}
}

func TestBadFlagsExit2NamingTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-events", "1"}, "events: 1"},
		{[]string{"-other-share", "1.5"}, "other share: 1.5"},
		{[]string{"-appenders", "0"}, "-appenders 0"},
		{[]string{"-rounds", "0"}, "-rounds 0"},
		{[]string{"-max-rss", "0"}, "-max-rss 0"},
		{[]string{"-naive-events", "0"}, "-naive-events 0"},
		{[]string{"-config", " , "}, "-config: no projections file"},
		{[]string{"-daemon-env", "PROJECTOR_SHARED_READ"}, `"PROJECTOR_SHARED_READ": want KEY=VALUE`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), tc.args, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
