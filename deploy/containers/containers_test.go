package containers

import (
	"bufio"
	"debug/elf"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const repoRoot = "../.."

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	Op   string // upper case: FROM, RUN, COPY, ...
	Args string
}

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{Op: strings.ToUpper(op), Args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDockerfile checks the image's shape (a build stage, then an empty base with only the
// binary and CA certificates, a non-root user) and runs the build stage's `go build` command as
// written, checking that the binary is static and stamped with the version given.
func TestDockerfile(t *testing.T) {
	ins := readDockerfile(t)
	var froms []string
	for _, in := range ins {
		if in.Op == "FROM" {
			froms = append(froms, in.Args)
		}
	}
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:") || froms[1] != "scratch" {
		t.Fatalf("stages %v, want a golang build stage and a scratch final stage", froms)
	}
	// Instructions of the final stage.
	var final []instruction
	for i := len(ins) - 1; i >= 0 && ins[i].Op != "FROM"; i-- {
		final = append([]instruction{ins[i]}, final...)
	}
	var copied []string
	var user, entrypoint string
	for _, in := range final {
		switch in.Op {
		case "COPY":
			f := strings.Fields(in.Args)
			if f[0] != "--from=build" {
				t.Errorf("final stage copies %q from outside the build stage", in.Args)
			}
			copied = append(copied, f[len(f)-1])
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		case "RUN":
			t.Errorf("final stage runs %q; it has no shell", in.Args)
		}
	}
	if !slices.Equal(copied, []string{"/etc/ssl/certs/ca-certificates.crt", "/projector"}) {
		t.Errorf("final stage holds %v, want only the CA certificates and the binary", copied)
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: the image must run as a non-root user", user)
	}
	if entrypoint != `["/projector"]` {
		t.Errorf("ENTRYPOINT %s", entrypoint)
	}

	// The Go version of the build stage is the one go.mod asks for.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	var goArg string
	for _, in := range ins {
		if in.Op == "ARG" && strings.HasPrefix(in.Args, "GO_VERSION=") {
			goArg = strings.TrimPrefix(in.Args, "GO_VERSION=")
		}
	}
	if goLine == nil || goArg != string(goLine[1]) {
		t.Errorf("Dockerfile GO_VERSION %q, go.mod asks for %q", goArg, goLine)
	}

	// Run the build stage's go build as written.
	var build string
	for _, in := range ins {
		if in.Op == "RUN" && strings.Contains(in.Args, "go build") {
			build = in.Args
		}
	}
	i := strings.Index(build, "CGO_ENABLED=0 go build")
	if i < 0 {
		t.Fatalf("the build stage does not run CGO_ENABLED=0 go build: %q", build)
	}
	build = build[i:]
	for _, want := range []string{"-trimpath", "-X github.com/projector-dev/projector/internal/version.Version=${VERSION}", "-o /out/projector", "./cmd/projector"} {
		if !strings.Contains(build, want) {
			t.Errorf("go build lacks %q: %s", want, build)
		}
	}
	out := filepath.Join(t.TempDir(), "projector")
	build = strings.ReplaceAll(build, "/out/projector", out)
	cmd := exec.Command("sh", "-c", build)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION=v9.8.7-image")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary needs a dynamic loader; the scratch image has none")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v dynamically", libs)
	}
	if f.Section(".debug_info") != nil || f.Section(".symtab") != nil {
		t.Error("the binary is not stripped (-s -w)")
	}
	v, err := exec.Command(out, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "v9.8.7-image") {
		t.Errorf("projector version: %v: %s", err, v)
	}
}

// TestDockerignore checks that the build context keeps every directory the binary is built
// from.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			ignored[strings.Trim(l, "/")] = true
		}
	}
	for _, must := range []string{".git", "deploy", "bin"} {
		if !ignored[must] {
			t.Errorf(".dockerignore does not leave out %s", must)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/projector")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if ignored[top] || ignored[filepath.ToSlash(rel)] {
			t.Errorf("package directory %s is left out of the build context by .dockerignore", rel)
		}
	}
}

type composeService struct {
	Image           string            `json:"image"`
	Build           any               `json:"build"`
	Command         []string          `json:"command"`
	Environment     map[string]string `json:"environment"`
	Ports           []string          `json:"ports"`
	Volumes         []string          `json:"volumes"`
	ReadOnly        bool              `json:"read_only"`
	CapDrop         []string          `json:"cap_drop"`
	StopGracePeriod string            `json:"stop_grace_period"`
	DependsOn       any               `json:"depends_on"`
}

// TestCompose checks that docker-compose.yml fits together: the official KurrentDB image, the
// projector's connection strings aimed at the kurrentdb and postgres services with the
// credentials they are given, its projections file mounted where PROJECTOR_CONFIG says, every
// mounted file present, Prometheus scraping the projector's port, and the grace period above
// the drain timeout. Docker itself is not needed (nor run).
func TestCompose(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]composeService `json:"services"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kurrentdb", "postgres", "projector", "prometheus"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no service %s", name)
		}
	}
	kdb, pg, p := c.Services["kurrentdb"], c.Services["postgres"], c.Services["projector"]
	if !strings.HasPrefix(kdb.Image, "kurrentplatform/kurrentdb:") {
		t.Errorf("kurrentdb image %q is not the official KurrentDB image", kdb.Image)
	}

	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}

	ku, err := url.Parse(p.Environment["KURRENTDB_URI"])
	if err != nil || ku.Hostname() != "kurrentdb" || ku.Port() != "2113" || ku.Query().Get("tls") != "false" || kdb.Environment["KURRENTDB_INSECURE"] != "true" {
		t.Errorf("KURRENTDB_URI %q does not reach the insecure kurrentdb service: %v", p.Environment["KURRENTDB_URI"], err)
	}
	du, err := url.Parse(p.Environment["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := du.User.Password()
	if du.Hostname() != "postgres" || du.User.Username() != pg.Environment["POSTGRES_USER"] || pw != pg.Environment["POSTGRES_PASSWORD"] || strings.TrimPrefix(du.Path, "/") != pg.Environment["POSTGRES_DB"] {
		t.Errorf("DATABASE_URL %q does not match the postgres service %v", du, pg.Environment)
	}

	cfg := p.Environment["PROJECTOR_CONFIG"]
	mounted := ""
	for _, v := range p.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == cfg {
			mounted = parts[0]
		}
	}
	if mounted == "" {
		t.Fatalf("PROJECTOR_CONFIG %s is not a mounted file", cfg)
	}
	pb, err := os.ReadFile(filepath.Join(repoRoot, mounted))
	if err != nil {
		t.Fatal(err)
	}
	var projections struct {
		Projections []struct {
			Name string `json:"name"`
		} `json:"projections"`
	}
	if err := yaml.Unmarshal(pb, &projections); err != nil || len(projections.Projections) == 0 {
		t.Errorf("%s holds no projections: %v", mounted, err)
	}

	if p.Environment["PROJECTOR_HTTP_ADDR"] != ":9090" || !slices.Contains(p.Ports, "9090:9090") {
		t.Errorf("projector listens on %q and publishes %v", p.Environment["PROJECTOR_HTTP_ADDR"], p.Ports)
	}
	pcfg, err := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pcfg), `targets: ["projector:9090"]`) {
		t.Error("deploy/prometheus/prometheus.yml does not scrape projector:9090")
	}

	drain, err := time.ParseDuration(p.Environment["PROJECTOR_DRAIN_TIMEOUT"])
	if err != nil {
		t.Fatal(err)
	}
	grace, err := time.ParseDuration(p.StopGracePeriod)
	if err != nil || grace <= drain {
		t.Errorf("stop_grace_period %q is not above PROJECTOR_DRAIN_TIMEOUT %s", p.StopGracePeriod, drain)
	}
	if !p.ReadOnly || !slices.Contains(p.CapDrop, "ALL") {
		t.Error("the projector container is not read-only with every capability dropped")
	}
}
