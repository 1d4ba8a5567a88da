package main

import (
	"testing"
)

func TestLocalURL(t *testing.T) {
	for in, want := range map[string]string{
		":9090": "http://127.0.0.1:9090", "0.0.0.0:80": "http://127.0.0.1:80", "[::]:9090": "http://127.0.0.1:9090",
		"10.0.0.5:9090": "http://10.0.0.5:9090", "localhost:1": "http://localhost:1",
	} {
		if got := localURL(in); got != want {
			t.Errorf("localURL(%q) = %q, want %q", in, got, want)
		}
	}
}
