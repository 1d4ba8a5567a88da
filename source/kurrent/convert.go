// Converting the client's recorded events into projection events, with the event IDs of many
// events formatted into one shared block of memory.

package kurrent

import (
	"encoding/hex"
	"strings"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// idsPerBlock is how many event IDs share one allocation.
const idsPerBlock = 64

// uuidLen is the length of a UUID in canonical form (8-4-4-4-12 hexadecimal digits).
const uuidLen = 36

// converter converts the client's recorded events into projection events; one goroutine uses
// it (a subscription's receiver). It must not be copied once used.
type converter struct {
	// ids is the current block of formatted IDs. Bytes once written are never changed (a full
	// block is left to the IDs taken from it), so the strings taken from it stay valid.
	ids strings.Builder
}

// event converts e. Its data and metadata are the client's, not copied.
func (c *converter) event(e *kurrentdb.RecordedEvent) projection.Event {
	return projection.Event{
		ID:          c.id(e.EventID),
		Type:        e.EventType,
		Stream:      e.StreamID,
		Revision:    e.EventNumber,
		Position:    tracking.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare},
		Data:        e.Data,
		Metadata:    e.UserMetadata,
		ContentType: e.ContentType,
		Created:     e.CreatedDate.UTC(),
	}
}

// id returns u in canonical form, as uuid.UUID.String does, written into the current block.
func (c *converter) id(u uuid.UUID) string {
	if c.ids.Cap()-c.ids.Len() < uuidLen {
		c.ids.Reset() // the IDs taken keep the old block
		c.ids.Grow(uuidLen * idsPerBlock)
	}
	var buf [uuidLen]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	start := c.ids.Len()
	c.ids.Write(buf[:])
	return c.ids.String()[start:]
}
