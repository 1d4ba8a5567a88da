package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeDocument decodes the projections file content b, which must be one YAML document: a
// further document after a "---" line would otherwise be ignored silently, so one that holds
// anything is an error at its "---" line. Errors name file and, where known, the line.
func decodeDocument(file string, b []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	// Decoding into a Node keeps lines and key order; Parse checks every key against the known
	// ones, as KnownFields does for typed decoding.
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, invalidYAML(file, 0, "the file is empty; it needs a projections list")
		}
		return nil, yamlError(file, err)
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		switch {
		case errors.Is(err, io.EOF):
			return &doc, nil
		case err != nil:
			return nil, yamlError(file, err)
		case !isEmptyDocument(&next):
			return nil, &ValidationError{Errors: []*Error{{File: file, Line: next.Line,
				Msg: "another YAML document starts here (after ---); the projections file is one document: list every projection under its one projections key"}}}
		}
	}
}

// isEmptyDocument reports whether the document n holds nothing (a "---" followed by nothing
// but comments).
func isEmptyDocument(n *yaml.Node) bool {
	if len(n.Content) == 0 {
		return true
	}
	c := n.Content[0]
	return len(n.Content) == 1 && c.Kind == yaml.ScalarNode && c.Tag == "!!null" && c.Value == ""
}

// yamlError turns a YAML decoding error into a configuration error with its line.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if _, e := fmt.Sscanf(msg, "line %d:", &line); e == nil {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return invalidYAML(file, line, msg)
}

func invalidYAML(file string, line int, msg string) error {
	return &ValidationError{Errors: []*Error{{File: file, Line: line, Msg: "invalid YAML: " + msg}}}
}
