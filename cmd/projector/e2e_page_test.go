package main

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// updateScreenshot makes TestStatusPageInABrowser write docs/status-page.png.
var updateScreenshot = flag.Bool("update-screenshot", false, "write the status page's screenshot to docs/status-page.png")

// browser starts a headless Chromium (Debian's chromium package) for t and returns a context
// that drives it. A missing browser fails the test: .ci/run installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the status page test needs Chromium (install it with apt-get install -y chromium): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // as root in a container
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	return ctx
}

// TestStatusPageInABrowser opens the status page of a running daemon in headless Chromium: it
// lists the projections, shows the event a stopped projection halted on and the dead letters
// of another, refuses a resume without the admin token (the page shows the refusal), and,
// with the token typed in, resumes the projection once its view is fixed. The page fits a
// phone's width. A screenshot is kept as a test artefact (go test -artifacts).
func TestStatusPageInABrowser(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	school := trainingschool.NewSchool(client)
	ctx := context.Background()
	for _, name := range []string{"dog-0", "bad-1", "dog-2", "dog-3"} {
		if _, err := school.Register(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `projections:
  - name: names
    schema: CREATE TABLE IF NOT EXISTS names (name text PRIMARY KEY CONSTRAINT not_bad CHECK (name NOT LIKE 'bad-%'));
    handlers:
      "__main__:Dog.Registered": INSERT INTO names VALUES (@data->>'name')
  - name: good_names
    on_error: {policy: skip}
    schema: CREATE TABLE IF NOT EXISTS good_names (name text PRIMARY KEY CONSTRAINT only_good CHECK (name NOT LIKE 'bad-%'));
    handlers:
      "__main__:Dog.Registered": INSERT INTO good_names VALUES (@data->>'name')
  - name: parked_names
    on_error: {policy: park}
    schema: CREATE TABLE IF NOT EXISTS parked_names (name text PRIMARY KEY CONSTRAINT not_parked CHECK (name NOT LIKE 'bad-%'));
    handlers:
      "__main__:Dog.Registered": INSERT INTO parked_names VALUES (@data->>'name')
`
	addr := testbin.FreeAddr(t)
	const token = "e2e-page-token-77a"
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr,
		"PROJECTOR_CONFIG="+writeFile(t, "p.yaml", cfg), "PROJECTOR_ADMIN_TOKEN="+token)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)

	b := browser(t)
	names := `section[data-name="names"]`
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	err := chromedp.Do(b,
		chromedp.Navigate("http://"+addr+"/"),
		chromedp.WaitVisible(chromedp.CSS(names+` .failed`)),
		chromedp.WaitVisible(chromedp.CSS(`section[data-name="good_names"] .dead-letters tbody tr`)),
		chromedp.WaitVisible(chromedp.CSS(`section[data-name="parked_names"] .parked tbody tr`)),
	)
	if err != nil {
		t.Fatalf("open the status page: %v", err)
	}
	listed, err := chromedp.Run(b, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("section[data-name] .name")).map(e => e.textContent).join(",")`))
	if err != nil || listed != "names,good_names,parked_names" {
		t.Errorf("projections on the page = %q (%v)", listed, err)
	}
	bad := trainingschool.DogID("bad-1").String()
	if failed := text(names + ` .failed`); !strings.Contains(failed, bad) || !strings.Contains(failed, trainingschool.TopicDogRegistered) || !strings.Contains(failed, `violates check constraint "not_bad"`) {
		t.Errorf("the stopped projection's failed event on the page:\n%s", failed)
	}
	if dl := text(`section[data-name="good_names"] .dead-letters`); !strings.Contains(dl, "Dead letters (1)") || !strings.Contains(dl, bad) || !strings.Contains(dl, "only_good") {
		t.Errorf("the dead letters on the page:\n%s", dl)
	}

	parkedSel := `section[data-name="parked_names"]`
	if p := text(parkedSel + ` .parked`); !strings.Contains(p, "Parked streams (1)") || !strings.Contains(p, bad) || !strings.Contains(p, "not_parked") {
		t.Errorf("the parked streams on the page:\n%s", p)
	}

	// Resume without the token: refused, and the page says so.
	err = chromedp.Do(b,
		chromedp.Click(chromedp.CSS(names+` button[data-command="resume"]`)),
		chromedp.WaitVisible(chromedp.CSS(names+` .message.refused`)),
	)
	if err != nil {
		t.Fatalf("resume without the token: %v", err)
	}
	if refusal := text(names + ` .message`); !strings.Contains(refusal, "refused (401)") || !strings.Contains(refusal, "admin token") {
		t.Errorf("the page's refusal = %q", refusal)
	}
	// The charts draw once the daemon has sampled the projections twice.
	poll.Until(t, 30*time.Second, "the page draws the lag and rate charts", func() bool {
		pts, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('section[data-name="good_names"] .spark.lag polyline').getAttribute("points")`))
		return err == nil && strings.Count(pts, ",") >= 2
	})
	png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.ArtifactDir(), "status-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s", shot)
	if *updateScreenshot {
		if err := os.WriteFile(filepath.Join(repoRoot, "docs", "status-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The view fixed, the token typed in: the resume goes through and the projection runs on.
	if _, err := pool.Exec(ctx, `ALTER TABLE names DROP CONSTRAINT not_bad`); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(b,
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		chromedp.Click(chromedp.CSS(names+` button[data-command="resume"]`)),
		chromedp.WaitVisible(chromedp.CSS(names+` .message.ok`)),
		chromedp.WaitNotPresent(chromedp.CSS(names+` .failed`)),
		chromedp.WaitVisible(chromedp.CSS(`section.state-live[data-name="names"]`)),
	)
	if err != nil {
		t.Fatalf("resume with the token: %v", err)
	}
	if accepted := text(names + ` .message`); !strings.Contains(accepted, "resume names: accepted") {
		t.Errorf("after the resume: message %q", accepted)
	}
	stored, err := chromedp.Run(b, chromedp.Evaluate[string](`sessionStorage.getItem("projector-admin-token") + "|" + document.cookie + "|" + localStorage.length`))
	if err != nil || stored != token+"||0" {
		t.Errorf("token storage = %q (%v), want the token in sessionStorage only", stored, err)
	}
	var count int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM names`).Scan(&count); err != nil || count != 4 {
		t.Errorf("names rows = %d (%v), want 4 after the resume", count, err)
	}

	// The parked stream resumed from its row's button once its view is fixed.
	if _, err := pool.Exec(ctx, `ALTER TABLE parked_names DROP CONSTRAINT not_parked`); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(b,
		chromedp.Click(chromedp.CSS(parkedSel+` .parked button[data-command="parked/resume"]`)),
		chromedp.WaitVisible(chromedp.CSS(parkedSel+` .message.ok`)),
		chromedp.WaitNotPresent(chromedp.CSS(parkedSel+` .parked`)),
	)
	if err != nil {
		t.Fatalf("resume the parked stream with the token: %v", err)
	}
	if accepted := text(parkedSel + ` .message`); !strings.Contains(accepted, "replayed 1 parked event(s)") {
		t.Errorf("after the parked stream's resume: message %q", accepted)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM parked_names`).Scan(&count); err != nil || count != 4 {
		t.Errorf("parked_names rows = %d (%v), want 4 after the resume", count, err)
	}

	// On a phone's width nothing overflows sideways.
	err = chromedp.Do(b, chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(names)))
	if err != nil {
		t.Fatalf("phone width: %v", err)
	}
	overflow, err := chromedp.Run(b, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatalf("phone width: %v", err)
	}
	if overflow {
		t.Error("the page overflows a 390 px wide screen")
	}
}
