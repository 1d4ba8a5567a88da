package emulator

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// parseStreamMeta extracts the keys that affect reads from a stream's
// metadata JSON. Unknown keys are ignored; malformed metadata affects
// nothing, as a real server treats it.
func parseStreamMeta(data []byte) streamMeta {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return streamMeta{}
	}
	num := func(key string) int64 {
		v, ok := raw[key]
		if !ok {
			return 0
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return n
	}
	return streamMeta{maxCount: num("$maxCount"), maxAge: num("$maxAge"), tb: num("$tb")}
}

// undeleteMetadata is the metadata written before the first events of an
// undeleted stream: the previous metadata with $tb set to tb.
func undeleteMetadata(metaStream *stream, tb int64) []byte {
	raw := map[string]json.RawMessage{}
	if metaStream != nil && len(metaStream.events) > 0 {
		_ = json.Unmarshal(metaStream.events[len(metaStream.events)-1].data, &raw)
		if raw == nil {
			raw = map[string]json.RawMessage{}
		}
	}
	raw["$tb"] = json.RawMessage(strconv.FormatInt(tb, 10))
	return marshalObject(raw)
}

// synthesizePropertyMetadata renders v2 record properties (a JSON object) as
// the custom metadata v1 reads return: the properties plus $schema.name, and
// $schema.format "Json" for JSON records.
func synthesizePropertyMetadata(props []byte, typ string, isJSON bool) []byte {
	raw := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(props)) > 0 {
		if err := json.Unmarshal(props, &raw); err != nil || raw == nil {
			return props
		}
	}
	name, _ := json.Marshal(typ)
	raw["$schema.name"] = name
	if isJSON {
		raw["$schema.format"] = json.RawMessage(`"Json"`)
	}
	return marshalObject(raw)
}

// marshalObject writes a JSON object with sorted keys.
func marshalObject(raw map[string]json.RawMessage) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range sortedKeys(raw) {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		b.Write(key)
		b.WriteByte(':')
		b.Write(raw[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}
