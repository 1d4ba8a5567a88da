package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the benchmark ran.
type Machine struct {
	NProc      int    `json:"nproc"`
	MemTotal   int64  `json:"mem_total_bytes"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	PostgreSQL string `json:"postgresql"`
	LoadStart  string `json:"load_average_start"`
	LoadEnd    string `json:"load_average_end"`
}

// ThisMachine describes the machine this process runs on (memory and load from /proc, when
// there is one).
func ThisMachine() Machine {
	return Machine{NProc: runtime.NumCPU(), MemTotal: memTotal(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, LoadStart: LoadAverage()}
}

// LoadAverage returns the 1, 5 and 15 minute load averages, "?" when unknown.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return ParseMemTotal(string(b))
}

// ParseMemTotal returns the MemTotal of a /proc/meminfo text in bytes, 0 when absent.
func ParseMemTotal(meminfo string) int64 { return ParseStatusKB(meminfo, "MemTotal") }

// ParseStatusKB returns the field key of a /proc text of "key: n kB" lines (meminfo, a
// process's status) in bytes, 0 when absent.
func ParseStatusKB(text, key string) int64 {
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}

// Phase is a measured run over a number of events.
type Phase struct {
	Events   int64         `json:"events"`
	Duration time.Duration `json:"duration_ns"`
}

// Rate is the phase's events per second (0 for an empty phase).
func (p Phase) Rate() float64 {
	if p.Duration <= 0 {
		return 0
	}
	return float64(p.Events) / p.Duration.Seconds()
}

// MarshalJSON adds the rate to the phase's fields.
func (p Phase) MarshalJSON() ([]byte, error) {
	type plain Phase
	return json.Marshal(struct {
		plain
		Rate float64 `json:"events_per_second"`
	}{plain(p), p.Rate()})
}

// Report holds every figure of a run: the log, shared by every form, and each form's figures.
type Report struct {
	Machine Machine `json:"machine"`
	Counts  struct {
		Events     int64 `json:"events"`
		Handled    int64 `json:"handled"` // events of the projections' topics
		Registered int64 `json:"registered"`
		Tricks     int64 `json:"tricks"`
	} `json:"counts"`
	Seed     Phase `json:"seed"`
	RSSBound int64 `json:"rss_bound_bytes"`
	// PGLatency is the delay each way between the daemon and PostgreSQL (Options.PGLatency).
	PGLatency time.Duration `json:"pg_latency_ns,omitempty"`
	Forms     []*FormReport `json:"forms"`
}

// FormReport holds the figures of one form (one set of projections files) over the log.
type FormReport struct {
	Name        string   `json:"name"`
	Config      []string `json:"config"`
	Projections []string `json:"projections"`
	CatchUp     Phase    `json:"catch_up"` // handled events, from the process's start
	CatchUpAll  Phase    `json:"catch_up_all_events"`
	// StartUp is the time from the process's start until it led every projection and read
	// its events; CatchUpLeading the handled events from then on, timed as the ceiling is.
	StartUp        time.Duration `json:"start_up_ns"`
	CatchUpLeading Phase         `json:"catch_up_leading"`
	Ceiling        Phase         `json:"ceiling"`
	Naive          Phase         `json:"naive"`
	DaemonCPU      time.Duration `json:"daemon_cpu_ns"`
	// EmulatorCPU is the emulator's CPU time during the catch-up: serving the subscription,
	// on the cores the daemon and PostgreSQL share.
	EmulatorCPU    time.Duration            `json:"emulator_cpu_catch_up_ns"`
	PeakRSSCatchUp int64                    `json:"peak_rss_catch_up_bytes"`
	PeakRSSLive    int64                    `json:"peak_rss_live_bytes"`
	ReadYourWrites map[string]Latency       `json:"read_your_writes"`
	ReadYourAll    Latency                  `json:"read_your_writes_every_projection"`
	Appends        Latency                  `json:"append_latency"`
	Verified       map[string]string        `json:"verified"`
	CaughtUpAt     map[string]time.Duration `json:"caught_up_ns"`
}

// CPUPerEvent is the daemon's catch-up CPU time in microseconds per event of n and per
// projection.
func (f *FormReport) CPUPerEvent(n int64) float64 {
	if n == 0 || len(f.Projections) == 0 {
		return 0
	}
	return float64(f.DaemonCPU.Microseconds()) / float64(n) / float64(len(f.Projections))
}

// ratio is a/b, 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Ratios are a form's rates compared.
type Ratios struct {
	// DaemonOverCeiling compares the daemon from its start with the ceiling;
	// LeadingOverCeiling from when it leads every projection, as the ceiling is timed.
	DaemonOverCeiling  float64 `json:"daemon_over_ceiling"`
	LeadingOverCeiling float64 `json:"daemon_leading_over_ceiling"`
	CeilingOverNaive   float64 `json:"ceiling_over_naive"`
	DaemonOverNaive    float64 `json:"daemon_over_naive"`
}

// Ratios compares the rates of the form's daemon, ceiling and naive baseline.
func (f *FormReport) Ratios() Ratios {
	return Ratios{
		DaemonOverCeiling:  ratio(f.CatchUp.Rate(), f.Ceiling.Rate()),
		LeadingOverCeiling: ratio(f.CatchUpLeading.Rate(), f.Ceiling.Rate()),
		CeilingOverNaive:   ratio(f.Ceiling.Rate(), f.Naive.Rate()),
		DaemonOverNaive:    ratio(f.CatchUp.Rate(), f.Naive.Rate()),
	}
}

// Comparison is a form's daemon catch-up rate over the first form's.
type Comparison struct {
	Form    string  `json:"form"`
	Over    string  `json:"over"`
	CatchUp float64 `json:"catch_up_ratio"`
}

// Comparisons compares the catch-up rate of every form after the first with the first's.
func (r *Report) Comparisons() []Comparison {
	var out []Comparison
	for _, f := range r.Forms[min(1, len(r.Forms)):] {
		out = append(out, Comparison{Form: f.Name, Over: r.Forms[0].Name, CatchUp: ratio(f.CatchUp.Rate(), r.Forms[0].CatchUp.Rate())})
	}
	return out
}

// PeakRSS is the highest peak RSS of any daemon of the run.
func (r *Report) PeakRSS() int64 {
	var peak int64
	for _, f := range r.Forms {
		peak = max(peak, f.PeakRSSCatchUp, f.PeakRSSLive)
	}
	return peak
}

func rate(p Phase) string {
	return fmt.Sprintf("%s events/s (%s in %.2fs)", thousands(int64(p.Rate()+0.5)), thousands(p.Events), p.Duration.Seconds())
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
