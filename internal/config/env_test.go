package config_test

import (
	"testing"

	"github.com/projector-dev/projector/internal/config"
)

// Resolve takes a given flag over the environment, the environment over the built-in default,
// and an empty variable as unset.
func TestResolve(t *testing.T) {
	env := map[string]string{config.EnvDatabaseURL: "postgres://env", config.EnvHTTPAddr: "", config.EnvLogLevel: "debug"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	s := config.Settings{DatabaseURL: "postgres://flag", LogLevel: "warn", ConfigFile: "stale"}
	s.Resolve(lookup, func(flag string) bool { return flag == "database-url" })
	if s.DatabaseURL != "postgres://flag" || s.HTTPAddr != config.DefaultHTTPAddr || s.LogLevel != "debug" ||
		s.LogFormat != config.DefaultLogFormat || s.ConfigFile != "" || s.DrainTimeout != config.DefaultDrainTimeout {
		t.Errorf("resolved = %+v", s)
	}
	for _, v := range config.Variables() {
		got, ok := config.VariableOfFlag(v.Flag)
		if !ok || got.Env != v.Env {
			t.Errorf("VariableOfFlag(%q) = %+v, %v", v.Flag, got, ok)
		}
	}
	if _, ok := config.VariableOfFlag("server"); ok {
		t.Error("VariableOfFlag(server) found a variable")
	}
}
