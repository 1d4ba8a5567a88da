// Package chartcheck renders the Projector Helm chart and validates every rendered manifest
// strictly against the Kubernetes API types.
package chartcheck
