package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
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
func ParseMemTotal(meminfo string) int64 {
	for line := range strings.SplitSeq(meminfo, "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
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

// Report holds every figure of a run.
type Report struct {
	Machine     Machine  `json:"machine"`
	Config      []string `json:"config"`
	Projections []string `json:"projections"`
	Counts      struct {
		Events     int64 `json:"events"`
		Handled    int64 `json:"handled"` // events of the projections' topics
		Registered int64 `json:"registered"`
		Tricks     int64 `json:"tricks"`
	} `json:"counts"`
	Seed           Phase                    `json:"seed"`
	CatchUp        Phase                    `json:"catch_up"` // handled events
	CatchUpAll     Phase                    `json:"catch_up_all_events"`
	Ceiling        Phase                    `json:"ceiling"`
	Naive          Phase                    `json:"naive"`
	DaemonCPU      time.Duration            `json:"daemon_cpu_ns"`
	PeakRSSCatchUp int64                    `json:"peak_rss_catch_up_bytes"`
	PeakRSSLive    int64                    `json:"peak_rss_live_bytes"`
	RSSBound       int64                    `json:"rss_bound_bytes"`
	ReadYourWrites map[string]Latency       `json:"read_your_writes"`
	Appends        Latency                  `json:"append_latency"`
	Verified       map[string]string        `json:"verified"`
	CaughtUpAt     map[string]time.Duration `json:"caught_up_ns"`
}

// CPUPerMillion is the daemon's CPU time per million events of n.
func (r *Report) CPUPerMillion(n int64) float64 {
	if n == 0 {
		return 0
	}
	return r.DaemonCPU.Seconds() * 1e6 / float64(n)
}

// ratio is a/b, 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Ratios are the report's rates compared.
type Ratios struct {
	DaemonOverCeiling float64 `json:"daemon_over_ceiling"`
	CeilingOverNaive  float64 `json:"ceiling_over_naive"`
	DaemonOverNaive   float64 `json:"daemon_over_naive"`
}

// Ratios compares the rates of the daemon, the ceiling and the naive baseline.
func (r *Report) Ratios() Ratios {
	return Ratios{
		DaemonOverCeiling: ratio(r.CatchUp.Rate(), r.Ceiling.Rate()),
		CeilingOverNaive:  ratio(r.Ceiling.Rate(), r.Naive.Rate()),
		DaemonOverNaive:   ratio(r.CatchUp.Rate(), r.Naive.Rate()),
	}
}

func rate(p Phase) string {
	return fmt.Sprintf("%s events/s (%s events in %.2fs)", thousands(int64(p.Rate()+0.5)), thousands(p.Events), p.Duration.Seconds())
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

// WriteTable prints the report as one two-column table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	m := r.Machine
	row("machine", fmt.Sprintf("%d CPUs, %.1f GiB memory, %s, %s, PostgreSQL %s", m.NProc, float64(m.MemTotal)/(1<<30), m.GoVersion, m.OS, m.PostgreSQL))
	row("load average", fmt.Sprintf("%s at start, %s at end", m.LoadStart, m.LoadEnd))
	row("projections", fmt.Sprintf("%s (%s)", strings.Join(r.Projections, ", "), strings.Join(r.Config, ", ")))
	c := r.Counts
	row("events", fmt.Sprintf("%s, %s of the projections' topics (%s registrations, %s tricks)", thousands(c.Events), thousands(c.Handled), thousands(c.Registered), thousands(c.Tricks)))
	row("seed (appends)", rate(r.Seed))
	row("daemon catch-up", rate(r.CatchUp))
	row("daemon catch-up, all events", rate(r.CatchUpAll))
	row("PostgreSQL ceiling (replay)", rate(r.Ceiling))
	row("one transaction per event", rate(r.Naive))
	q := r.Ratios()
	row("daemon / ceiling", fmt.Sprintf("%.2f", q.DaemonOverCeiling))
	row("ceiling / one tx per event", fmt.Sprintf("%.2f", q.CeilingOverNaive))
	row("daemon / one tx per event", fmt.Sprintf("%.2f", q.DaemonOverNaive))
	row("daemon CPU (catch-up run)", fmt.Sprintf("%.2fs: %.2fs per 1M events of the log, %.2fs per 1M of the topics", r.DaemonCPU.Seconds(), r.CPUPerMillion(c.Events), r.CPUPerMillion(c.Handled)))
	row("daemon peak RSS", fmt.Sprintf("%s catch-up, %s live (bound %s)", mib(r.PeakRSSCatchUp), mib(r.PeakRSSLive), mib(r.RSSBound)))
	for _, name := range r.Projections {
		l := r.ReadYourWrites[name]
		row("read-your-writes "+name, fmt.Sprintf("p50 %s, p99 %s, max %s (%d rounds, append + wait)", ms(l.P50), ms(l.P99), ms(l.Max), l.N))
	}
	row("append alone", fmt.Sprintf("p50 %s, p99 %s, max %s", ms(r.Appends.P50), ms(r.Appends.P99), ms(r.Appends.Max)))
	for _, k := range []string{"daemon", "ceiling", "naive"} {
		if v, ok := r.Verified[k]; ok {
			row("verified "+k, v)
		}
	}
	return tw.Flush()
}

// WriteJSON writes the report as indented JSON to path, with its ratios and the daemon's CPU
// seconds per million events.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(struct {
		*Report
		Ratios              Ratios  `json:"ratios"`
		CPUPerMillionEvents float64 `json:"daemon_cpu_seconds_per_million_events"`
		CPUPerMillionTopics float64 `json:"daemon_cpu_seconds_per_million_events_of_the_topics"`
	}{r, r.Ratios(), r.CPUPerMillion(r.Counts.Events), r.CPUPerMillion(r.Counts.Handled)}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}
