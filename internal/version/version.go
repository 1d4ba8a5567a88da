// Package version holds the build's version string, stamped at link time with
// -ldflags "-X github.com/projector-dev/projector/internal/version.Version=...".
package version

// Version is the release this binary was built from; "dev" for unstamped builds.
var Version = "dev"
