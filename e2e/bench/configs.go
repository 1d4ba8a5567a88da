package bench

import (
	"bytes"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/projector-dev/projector/internal/config"
)

// MergeConfigs returns one projections file holding the projections of every file of paths, in
// order, so that one daemon runs them all. Each file must be a mapping with a projections list;
// the merged file is validated as the daemon validates it.
func MergeConfigs(paths []string) ([]byte, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no projections file given")
	}
	var items []*yaml.Node
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read projections file: %w", err)
		}
		// Validate each file on its own first, so errors name the file and line.
		if _, err := config.Parse(path, b); err != nil {
			return nil, err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "projections" {
				items = append(items, root.Content[i+1].Content...)
			}
		}
	}
	list := &yaml.Node{Kind: yaml.SequenceNode, Content: items}
	root := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "projections"}, list}}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode the merged projections file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode the merged projections file: %w", err)
	}
	return buf.Bytes(), nil
}

// WithPartitions returns the projections file merged with the partitions key of every
// projection set to partitions.
func WithPartitions(merged []byte, partitions int) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(merged, &doc); err != nil {
		return nil, fmt.Errorf("set partitions: %w", err)
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "projections" {
			continue
		}
		for _, p := range root.Content[i+1].Content {
			set := false
			for j := 0; j+1 < len(p.Content); j += 2 {
				if p.Content[j].Value == "partitions" {
					p.Content[j+1].Value, set = fmt.Sprint(partitions), true
				}
			}
			if !set {
				p.Content = append(p.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "partitions"},
					&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(partitions)})
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("set partitions: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("set partitions: %w", err)
	}
	return buf.Bytes(), nil
}

// Topics returns the union of the topics of cfg's projections.
func Topics(cfg *config.Config) map[string]bool {
	topics := map[string]bool{}
	for _, p := range cfg.Projections {
		for _, t := range p.Compiled.Topics() {
			topics[t] = true
		}
	}
	return topics
}
