package config

import (
	"fmt"
	"strings"
)

// maxMemberID bounds the member id's length.
const maxMemberID = 200

// Member returns this replica's member id: MemberID, or, when it is empty, the host name and
// the process id ("host-1234"; programs pass os.Hostname and os.Getpid()), or "projector-1234"
// when the host name is unknown. It returns an *Error naming PROJECTOR_MEMBER_ID when MemberID
// is too long or holds a space or control character.
func (s Settings) Member(hostname func() (string, error), pid int) (string, error) {
	if err := s.checkMemberID(); err != nil {
		return "", err
	}
	if id := strings.TrimSpace(s.MemberID); id != "" {
		return id, nil
	}
	host, err := hostname()
	if err != nil || strings.TrimSpace(host) == "" {
		host = "projector"
	}
	return fmt.Sprintf("%s-%d", strings.TrimSpace(host), pid), nil
}

// checkMemberID returns an *Error naming PROJECTOR_MEMBER_ID when MemberID is not a usable id.
func (s Settings) checkMemberID() *Error {
	id := strings.TrimSpace(s.MemberID)
	if len(id) > maxMemberID {
		return &Error{File: EnvMemberID, Msg: fmt.Sprintf("%d characters long; use at most %d (or --member-id)", len(id), maxMemberID)}
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return &Error{File: EnvMemberID, Msg: fmt.Sprintf("%q holds a space or control character; use a name such as the pod name (or --member-id)", s.MemberID)}
		}
	}
	return nil
}
