package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/config"
)

func TestMemberIDDefaultsToHostAndPID(t *testing.T) {
	s := config.FromEnv(func(string) (string, bool) { return "", false })
	host := func() (string, error) { return "node-7", nil }
	if id, err := s.Member(host, 4242); err != nil || id != "node-7-4242" {
		t.Errorf("default member id = %q, %v; want node-7-4242", id, err)
	}
	noHost := func() (string, error) { return "", errors.New("no host name") }
	if id, err := s.Member(noHost, 9); err != nil || id != "projector-9" {
		t.Errorf("member id without a host name = %q, %v; want projector-9", id, err)
	}
	s = config.FromEnv(func(k string) (string, bool) { return "projector-0", k == config.EnvMemberID })
	if id, err := s.Member(host, 1); err != nil || id != "projector-0" {
		t.Errorf("PROJECTOR_MEMBER_ID=projector-0: %q, %v", id, err)
	}
}

func TestMemberIDIsValidated(t *testing.T) {
	for v, want := range map[string]string{
		"two words":              `PROJECTOR_MEMBER_ID: "two words" holds a space or control character`,
		"tab\there":              `PROJECTOR_MEMBER_ID: "tab\there" holds a space or control character`,
		strings.Repeat("x", 201): `PROJECTOR_MEMBER_ID: 201 characters long; use at most 200`,
	} {
		s := config.FromEnv(func(string) (string, bool) { return "", false })
		s.MemberID = v
		err := s.Validate(false, false)
		if !config.IsValidation(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("member id %q: Validate = %v, want %q", v, err, want)
		}
		if _, err := s.Member(func() (string, error) { return "h", nil }, 1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("member id %q: Member = %v, want %q", v, err, want)
		}
	}
}
