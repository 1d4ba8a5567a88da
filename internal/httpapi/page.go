// The status page: GET / renders the projections' state as HTML (html/template), with its
// stylesheet and script served from embedded files under /assets/; the script refreshes the
// page from the JSON API and sends the commands with the admin token the operator types in.

package httpapi

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// pageTemplate is the status page.
var pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"rate":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"seconds":  func(v float64) string { return fmt.Sprintf("%.1f s", v) },
	"utc":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"optional": optional,
}).ParseFS(assets, "assets/page.html"))

// pageSecurity is the Content-Security-Policy of the page and its assets: nothing but the
// daemon's own script, stylesheet and API; no inline script; never framed.
const pageSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// setPageHeaders sets the security headers of the page and its assets.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageSecurity)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

func (a *api) registerPage(mux *http.ServeMux) {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /assets/{file}", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.PathValue("file"), ".html") {
			http.NotFound(w, r)
			return
		}
		setPageHeaders(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		http.StripPrefix("/assets/", files).ServeHTTP(w, r)
	})
}

// pageData is what the page template renders.
type pageData struct {
	Head        string
	HeadAge     string
	Rendered    time.Time
	Projections []pageProjection
	// DeadLettersError says why the dead letters could not be read; empty when they were.
	DeadLettersError string
}

// pageProjection is one projection's card.
type pageProjection struct {
	ProjectionJSON
	EventsPerSecond float64
	// ETA is the estimated time to catch up, while catching up at a known rate.
	ETA         string
	LagPoints   string // the lag chart's polyline points
	RatePoints  string // the events-per-second chart's polyline points
	DeadLetters []DeadLetterJSON
}

func (a *api) page(w http.ResponseWriter, r *http.Request) {
	list := a.list()
	d := pageData{Head: "unknown", Rendered: a.o.Now().UTC()}
	if list.Head != nil {
		d.Head = fmt.Sprint(*list.Head)
	}
	if list.HeadAge != nil {
		d.HeadAge = fmt.Sprintf("%.0f s ago", *list.HeadAge)
	}
	var hist HistoryJSON
	if a.o.History != nil {
		hist = a.o.History.JSON()
	}
	letters := map[string][]DeadLetterJSON{}
	if a.o.DeadLetters != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		all, err := a.o.DeadLetters.List(ctx, "")
		cancel()
		if err != nil {
			d.DeadLettersError = err.Error()
		}
		for _, l := range all {
			letters[l.Projection] = append(letters[l.Projection], l)
		}
	}
	for _, p := range list.Projections {
		pts := hist.Projections[p.Name]
		pp := pageProjection{ProjectionJSON: p, DeadLetters: letters[p.Name]}
		pp.EventsPerSecond, pp.ETA = rates(p, pts)
		pp.LagPoints = sparkline(pts, func(pt PointJSON) float64 { return float64(pt.Lag) })
		pp.RatePoints = sparkline(pts, func(pt PointJSON) float64 { return pt.EventsPerSecond })
		d.Projections = append(d.Projections, pp)
	}
	setPageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTemplate.Execute(w, d); err != nil && r.Context().Err() == nil {
		http.Error(w, "render the status page: "+err.Error(), http.StatusInternalServerError)
	}
}

// rates returns the latest events rate of p and, while it catches up, the time it needs to
// reach the head at the positions rate of the last samples (at most six).
func rates(p ProjectionJSON, pts []PointJSON) (eventsPerSecond float64, eta string) {
	if len(pts) == 0 {
		return 0, ""
	}
	eventsPerSecond = pts[len(pts)-1].EventsPerSecond
	recent := pts[max(len(pts)-6, 1):]
	var sum float64
	for _, pt := range recent {
		sum += pt.PositionsPerSecond
	}
	if len(recent) == 0 || p.State != "catching_up" || p.Lag == nil || *p.Lag == 0 || sum <= 0 {
		return eventsPerSecond, ""
	}
	secs := float64(*p.Lag) / (sum / float64(len(recent)))
	return eventsPerSecond, (time.Duration(math.Min(secs, 1e6)) * time.Second).String()
}

// sparkline returns the points of a polyline drawing value over pts in a 120×30 box, scaled
// to the largest value; empty for fewer than two points.
func sparkline(pts []PointJSON, value func(PointJSON) float64) string {
	if len(pts) < 2 {
		return ""
	}
	top := 0.0
	for _, pt := range pts {
		top = math.Max(top, value(pt))
	}
	var b strings.Builder
	for i, pt := range pts {
		x := 120 * float64(i) / float64(len(pts)-1)
		y := 29.0
		if top > 0 {
			y = 29 - 28*value(pt)/top
		}
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	return strings.TrimSpace(b.String())
}

// optional renders a pointer's value, or "unknown" for nil.
func optional(v *uint64) string {
	if v == nil {
		return "unknown"
	}
	return fmt.Sprint(*v)
}
