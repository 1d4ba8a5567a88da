package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseMemTotal(t *testing.T) {
	if got := ParseMemTotal("MemFree:  10 kB\nMemTotal:       24684544 kB\n"); got != 24684544*1024 {
		t.Errorf("ParseMemTotal = %d", got)
	}
	if got := ParseMemTotal("nothing here"); got != 0 {
		t.Errorf("ParseMemTotal without MemTotal = %d", got)
	}
}

func sampleReport() *Report {
	r := &Report{
		Machine:     Machine{NProc: 2, MemTotal: 4 << 30, GoVersion: "go1.26", OS: "linux/amd64", PostgreSQL: "15.2", LoadStart: "1.00 0.50 0.25", LoadEnd: "2.00 1.00 0.50"},
		Config:      []string{"a.yaml"},
		Projections: []string{"dogs", "dog_counts"},
		Seed:        Phase{Events: 1000, Duration: time.Second},
		CatchUp:     Phase{Events: 900, Duration: 100 * time.Millisecond},
		CatchUpAll:  Phase{Events: 1000, Duration: 100 * time.Millisecond},
		Ceiling:     Phase{Events: 900, Duration: 50 * time.Millisecond},
		Naive:       Phase{Events: 90, Duration: 900 * time.Millisecond},
		DaemonCPU:   500 * time.Millisecond,
		RSSBound:    100 << 20, PeakRSSCatchUp: 40 << 20, PeakRSSLive: 30 << 20,
		ReadYourWrites: map[string]Latency{"dogs": {P50: 10 * time.Millisecond, P99: 20 * time.Millisecond, Max: 30 * time.Millisecond, N: 300}},
		Verified:       map[string]string{"daemon": "5 checks on dogs"},
	}
	r.Counts.Events, r.Counts.Handled = 1000, 900
	return r
}

func TestReportTableShowsTheRatesAndRatios(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2 CPUs, 4.0 GiB memory, go1.26",
		"1.00 0.50 0.25 at start, 2.00 1.00 0.50 at end",
		"daemon catch-up              9,000 events/s (900 events in 0.10s)",
		"PostgreSQL ceiling (replay)  18,000 events/s",
		"one transaction per event    100 events/s",
		"daemon / ceiling             0.50",
		"ceiling / one tx per event   180.00",
		"0.50s: 500.00s per 1M events of the log, 555.56s per 1M of the topics",
		"40.0 MiB catch-up, 30.0 MiB live (bound 100.0 MiB)",
		"read-your-writes dogs        p50 10.0 ms, p99 20.0 ms, max 30.0 ms (300 rounds",
		"verified daemon              5 checks on dogs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
}

func TestReportJSONHasTheRates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	if err := sampleReport().WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		CatchUp struct {
			Events int64   `json:"events"`
			Rate   float64 `json:"events_per_second"`
		} `json:"catch_up"`
		Machine Machine `json:"machine"`
		Ratios  Ratios  `json:"ratios"`
		CPU     float64 `json:"daemon_cpu_seconds_per_million_events"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.CatchUp.Events != 900 || got.CatchUp.Rate != 9000 || got.Machine.NProc != 2 || got.Ratios.DaemonOverCeiling != 0.5 || got.Ratios.CeilingOverNaive != 180 || got.CPU != 500 {
		t.Errorf("JSON %s", b)
	}
}
