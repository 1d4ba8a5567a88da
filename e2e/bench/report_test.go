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
	if got := ParseStatCPU("4242 (kurrentdb emu) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0"); got != 3*time.Second {
		t.Errorf("ParseStatCPU = %v, want 3s (250 + 50 ticks)", got)
	}
	if got := ParseStatCPU("no fields"); got != 0 {
		t.Errorf("ParseStatCPU without fields = %v", got)
	}
	if got := ParseStatusKB("VmPeak:\t  1000 kB\nVmHWM:\t   45212 kB\nVmRSS:\t 30000 kB\n", "VmHWM"); got != 45212*1024 {
		t.Errorf("ParseStatusKB(VmHWM) = %d", got)
	}
}

func TestPeakRSSOfARunningProcess(t *testing.T) {
	own := peakRSS(os.Getpid())
	if own <= 0 || own > 64<<30 {
		t.Errorf("peakRSS of this process = %d bytes", own)
	}
	if got := peakRSS(-1); got != 0 {
		t.Errorf("peakRSS of no process = %d", got)
	}
}

func sampleReport() *Report {
	form := func(name string, catchUp time.Duration) *FormReport {
		return &FormReport{
			Name:           name,
			Config:         []string{name + ".yaml"},
			Projections:    []string{"dogs", "dog_counts"},
			CatchUp:        Phase{Events: 900, Duration: catchUp},
			CatchUpAll:     Phase{Events: 1000, Duration: catchUp},
			StartUp:        catchUp / 5,
			CatchUpLeading: Phase{Events: 900, Duration: catchUp * 4 / 5},
			Ceiling:        Phase{Events: 900, Duration: 50 * time.Millisecond},
			Naive:          Phase{Events: 90, Duration: 900 * time.Millisecond},
			DaemonCPU:      500 * time.Millisecond,
			EmulatorCPU:    100 * time.Millisecond,
			PeakRSSCatchUp: 40 << 20, PeakRSSLive: 30 << 20,
			ReadYourWrites: map[string]Latency{"dogs": {P50: 10 * time.Millisecond, P99: 20 * time.Millisecond, Max: 30 * time.Millisecond, N: 300}},
			ReadYourAll:    Latency{P50: 11 * time.Millisecond, P99: 21 * time.Millisecond, Max: 31 * time.Millisecond, N: 300},
			Verified:       map[string]string{"daemon": "5 checks on dogs"},
		}
	}
	r := &Report{
		Machine:  Machine{NProc: 2, MemTotal: 4 << 30, GoVersion: "go1.26", OS: "linux/amd64", PostgreSQL: "15.2", LoadStart: "1.00 0.50 0.25", LoadEnd: "2.00 1.00 0.50"},
		Seed:     Phase{Events: 1000, Duration: time.Second},
		RSSBound: 100 << 20,
		Forms:    []*FormReport{form("per-event", 100*time.Millisecond), form("batch", 25*time.Millisecond)},
	}
	r.Forms[1].PeakRSSLive = 50 << 20
	r.Counts.Events, r.Counts.Handled = 1000, 900
	return r
}

func TestReportTableShowsTheRatesAndRatiosOfEachForm(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(b.String()), " ") // columns padded to any width
	for _, want := range []string{
		"2 CPUs, 4.0 GiB memory, go1.26",
		"1.00 0.50 0.25 at start, 2.00 1.00 0.50 at end",
		"per-event",
		"daemon catch-up 9,000 events/s (900 in 0.10s) 36,000 events/s (900 in 0.03s)",
		"PostgreSQL ceiling (replay) 18,000 events/s",
		"one transaction per event 100 events/s",
		"once leading (as the ceiling) 11,250 events/s (900 in 0.08s); start-up 0.02s",
		"daemon / ceiling 0.50 from its start, 0.62 once leading 2.00 from its start, 2.50 once leading",
		"ceiling / one tx per event 180.00",
		"0.50s, 250.00 µs per event per projection",
		"40.0 MiB catch-up, 30.0 MiB live",
		"emulator CPU (catch-up) 0.10s, 100.00 µs per event",
		"read-your-writes, every projection p50 11.0 ms, p99 21.0 ms, max 31.0 ms (300 rounds)",
		"read-your-writes, projection 1 dogs: p50 10.0 ms, p99 20.0 ms, max 30.0 ms (300 rounds)",
		"verified daemon 5 checks on dogs",
		"catch-up batch / per-event 4.00",
		"peak RSS bound 100.0 MiB (highest peak 50.0 MiB)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestReportJSONHasTheRatesOfEachForm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	if err := sampleReport().WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Machine Machine `json:"machine"`
		Forms   []struct {
			Name    string `json:"name"`
			CatchUp struct {
				Events int64   `json:"events"`
				Rate   float64 `json:"events_per_second"`
			} `json:"catch_up"`
			Ratios Ratios  `json:"ratios"`
			CPU    float64 `json:"daemon_cpu_us_per_event_per_projection"`
			RYW    Latency `json:"read_your_writes_every_projection"`
		} `json:"forms"`
		Comparisons []Comparison `json:"comparisons"`
		PeakRSS     int64        `json:"peak_rss_bytes"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Forms) != 2 || got.Machine.NProc != 2 || got.PeakRSS != 50<<20 {
		t.Fatalf("JSON %s", b)
	}
	f := got.Forms[0]
	if f.Name != "per-event" || f.CatchUp.Events != 900 || f.CatchUp.Rate != 9000 || f.Ratios.DaemonOverCeiling != 0.5 || f.Ratios.LeadingOverCeiling != 0.625 || f.Ratios.CeilingOverNaive != 180 || f.CPU != 250 || f.RYW.P99 != 21*time.Millisecond {
		t.Errorf("per-event form in JSON %s", b)
	}
	if got.Forms[1].Name != "batch" || got.Forms[1].CatchUp.Rate != 36000 {
		t.Errorf("batch form in JSON %s", b)
	}
	if len(got.Comparisons) != 1 || got.Comparisons[0] != (Comparison{Form: "batch", Over: "per-event", CatchUp: 4}) {
		t.Errorf("comparisons %+v", got.Comparisons)
	}
}
