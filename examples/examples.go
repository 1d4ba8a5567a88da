// Package examples holds the example projections files (the seed's training school as
// declarative SQL), embedded so that `projector demo` can run them.
package examples

import "embed"

// Files holds the example projections files (*.yaml).
//
//go:embed *.yaml
var Files embed.FS

// DogCounts is the file name of the dog/trick count projection the demo runs.
const DogCounts = "dog_counts.yaml"
