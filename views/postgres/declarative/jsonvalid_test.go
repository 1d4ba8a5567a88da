package declarative

import (
	"encoding/json"
	"strings"
	"testing"
)

// jsonSamples are texts around every rule of the grammar, valid and not.
var jsonSamples = []string{
	``, ` `, `{}`, `[]`, ` { } `, `[ ]`, `{"a":1}`, `{"a" : [1, 2.5, -3e+7, 0.1E-2, true, false, null]}`,
	`{"a":{"b":{"c":[[],{}]}}}`, `"x"`, `"\u00e9\"\\\/\b\f\n\r\t"`, `"\u00g0"`, `"\u00e"`, `"\x"`,
	`"a` + "\x01" + `"`, "\"\xff\xfe\"", `"abc`, `"\`, `0`, `-0`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`,
	`1E5`, `+1`, `-01`, `1.5e3.2`, `true`, `tru`, `truex`, `nul`, `null null`, `false,`, `[1,]`,
	`[,1]`, `[1 2]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,"a":1}`, `{1:2}`, `{"a":1 "b":2}`, `[}`, `{]`,
	`[[[]]`, `[]]`, `{"a":1}}`, "\t\n\r [1]\r\n", "\v[1]", `{"dog":"Rex","tricks":["sit","roll"]}`,
	"[1]\x00", `"\ud800"`, `[1e1000]`, `{"a":[{"b":-0.0e-0}]}`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64),
	strings.Repeat("[", 65) + strings.Repeat("]", 65),
	strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat("[", 70) + strings.Repeat("]", 69),
}

// validJSON agrees with encoding/json.Valid on every sample.
func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	valid := 0
	for _, s := range jsonSamples {
		want := json.Valid([]byte(s))
		if got := validJSON([]byte(s)); got != want {
			t.Errorf("validJSON(%.80q) = %v, encoding/json.Valid says %v", s, got, want)
		}
		if want {
			valid++
		}
	}
	if valid == 0 || valid == len(jsonSamples) {
		t.Fatalf("%d of %d samples are valid: the samples need both kinds", valid, len(jsonSamples))
	}
}

// validJSON agrees with encoding/json.Valid on any input.
func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Errorf("validJSON(%q) = %v, encoding/json.Valid says %v", b, got, want)
		}
	})
}

var benchJSON = []byte(`{"dogId":"dog-123456","name":"Rex the third","breed":"collie","tricks":["sit","roll over","play dead"],"age":7,"weight":21.5,"vaccinated":true}`)

func BenchmarkValidJSON(b *testing.B) {
	b.SetBytes(int64(len(benchJSON)))
	for b.Loop() {
		if !validJSON(benchJSON) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkEncodingJSONValid(b *testing.B) {
	b.SetBytes(int64(len(benchJSON)))
	for b.Loop() {
		if !json.Valid(benchJSON) {
			b.Fatal("invalid")
		}
	}
}
