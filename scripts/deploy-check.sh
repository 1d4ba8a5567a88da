#!/usr/bin/env bash
# Checks the deployment artefacts (make deploy-check):
#  - promtool: the alert rules, their unit tests and the docker-compose Prometheus config;
#  - the deploy/ Go module: helm lint and helm template of the chart for the default values and
#    every example values file, every rendered manifest decoded strictly into its Kubernetes API
#    type, the sidecar example, the Dockerfile's build recipe, docker-compose.yml, the dashboard,
#    and the end-to-end tests that run the real daemon, the KurrentDB emulator, PostgreSQL and
#    Prometheus (every metric the rules and the dashboard use is exported; Prometheus sees lag and
#    position move).
# Needs PostgreSQL on 127.0.0.1:5432 or at PROJECTOR_TEST_DATABASE_URL (trust auth, user postgres;
# make deploy-check starts a throwaway one through scripts/with-postgres.sh when none answers) and
# installs Debian's prometheus
# package when promtool or prometheus is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
# staticcheck of the deploy module analyses all of Helm and k8s.io on a cold build cache (minutes);
# it runs only with DEPLOY_STATICCHECK=1. Release 2026.2.2 is module version v0.8.2.
STATICCHECK_MODULE_VERSION=${STATICCHECK_MODULE_VERSION:-v0.8.2}

log() { printf '\n--- %s\n' "$*"; }

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  log "installing Prometheus (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version | head -n1

log "promtool check rules, test rules, check config"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml
promtool check config deploy/prometheus/prometheus.yml

cd deploy
log "deploy module: gofmt, vet"
out=$(gofmt -l .)
if [ -n "$out" ]; then echo "gofmt needed on:"; echo "$out"; exit 1; fi
"$GO" vet ./...
if [ "${DEPLOY_STATICCHECK:-0}" = 1 ]; then
  "$GO" run "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_MODULE_VERSION}" ./...
fi

# Compile the daemon and the emulator once, as the Dockerfile does, so that the test packages
# below (which build them in parallel) only link.
(cd .. && CGO_ENABLED=0 "$GO" build -trimpath ./cmd/projector ./cmd/kurrentdb-emulator)

log "deploy module: chart lint, template and strict validation; containers; metrics; Prometheus end-to-end"
"$GO" test -count=1 -timeout 10m ./...

log "chart: default values and every example values file"
"$GO" run ./cmd/chartcheck -q helm/projector/values.yaml helm/projector/ci/*-values.yaml
