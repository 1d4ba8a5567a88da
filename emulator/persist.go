package emulator

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// The persisted log is one append-only file: an 8-byte magic header, then one
// frame per record:
//
//	uint32 little-endian  payload length
//	uint32 little-endian  CRC-32C (Castagnoli) of the payload
//	payload               uvarint position, varint revision, flags byte,
//	                      16-byte event id, varint created ticks, then
//	                      stream, type, data and metadata, each as
//	                      uvarint length + bytes
//
// Each write (append batch) is written with one write call and fsynced
// before it becomes visible. On open, a torn last frame (a crash during a
// write) is truncated away with a log line; damage anywhere else is an error.

// logFileName is the log's file name inside StoreOptions.DataDir.
const logFileName = "kurrentdb-emulator.log"

var logMagic = []byte("KDBEMU01")

const frameHeader = 8

// maxFramePayload bounds one frame: events are at most 16 MiB, plus names.
const maxFramePayload = 64 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// logFile is the open, persisted log.
type logFile struct {
	f    *os.File
	path string
	size int64 // bytes of complete frames
	buf  []byte
}

// openLogFile opens (or creates) the log in dir and passes every record in
// it, in order, to apply.
func openLogFile(dir string, log *zap.Logger, apply func(*record, string) error) (*logFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("emulator: create data directory: %w", err)
	}
	path := filepath.Join(dir, logFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("emulator: open log: %w", err)
	}
	if err := lockLogFile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	if info, err := f.Stat(); err == nil && info.Size() == 0 {
		// A new file: make its directory entry durable too.
		if d, err := os.Open(dir); err == nil {
			_ = d.Sync()
			_ = d.Close()
		}
	}
	l := &logFile{f: f, path: path}
	if err := l.load(log, apply); err != nil {
		_ = f.Close()
		return nil, err
	}
	return l, nil
}

// resetToEmpty makes the file an empty log: just the header.
func (l *logFile) resetToEmpty() error {
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("emulator: reset log %s: %w", l.path, err)
	}
	if _, err := l.f.WriteAt(logMagic, 0); err != nil {
		return fmt.Errorf("emulator: write log header %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("emulator: sync log %s: %w", l.path, err)
	}
	l.size = int64(len(logMagic))
	_, err := l.f.Seek(l.size, io.SeekStart)
	return err
}

// load reads the log, truncating a torn tail.
func (l *logFile) load(log *zap.Logger, apply func(*record, string) error) error {
	info, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("emulator: stat log %s: %w", l.path, err)
	}
	fileSize := info.Size()
	if fileSize < int64(len(logMagic)) {
		return l.resetToEmpty() // a new file, or a crash while writing the header
	}
	br := bufio.NewReaderSize(l.f, 1<<20)
	head := make([]byte, len(logMagic))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != string(logMagic) {
		return fmt.Errorf("emulator: %s is not an emulator log (bad header)", l.path)
	}
	off := int64(len(logMagic))
	var hdr [frameHeader]byte
	count := 0
	torn := ""
	var prev *record
	for off < fileSize {
		if fileSize-off < frameHeader {
			torn = "incomplete frame header"
			break
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("emulator: read log %s at offset %d: %w", l.path, off, err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if n > maxFramePayload {
			if off+frameHeader+n >= fileSize {
				torn = "frame length beyond the end of the file"
				break
			}
			return fmt.Errorf("emulator: log %s is corrupt at offset %d: frame length %d", l.path, off, n)
		}
		if off+frameHeader+n > fileSize {
			torn = "incomplete frame"
			break
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return fmt.Errorf("emulator: read log %s at offset %d: %w", l.path, off, err)
		}
		if crc32.Checksum(payload, crcTable) != sum {
			if off+frameHeader+n == fileSize {
				torn = "checksum mismatch in the last frame"
				break
			}
			return fmt.Errorf("emulator: log %s is corrupt at offset %d: checksum mismatch", l.path, off)
		}
		r, name, err := decodeRecord(payload, prev)
		if err != nil {
			return fmt.Errorf("emulator: log %s is corrupt at offset %d: %w", l.path, off, err)
		}
		if err := apply(r, name); err != nil {
			return fmt.Errorf("emulator: log %s at offset %d: %w", l.path, off, err)
		}
		off += frameHeader + n
		count++
		prev = r
	}
	if torn != "" {
		log.Warn("emulator log has a torn last record (interrupted write); truncating it",
			zap.String("file", l.path), zap.Int64("offset", off), zap.Int64("size", fileSize), zap.String("reason", torn))
		if err := l.f.Truncate(off); err != nil {
			return fmt.Errorf("emulator: truncate torn log %s: %w", l.path, err)
		}
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("emulator: sync log %s: %w", l.path, err)
		}
	}
	l.size = off
	if _, err := l.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("emulator: seek log %s: %w", l.path, err)
	}
	log.Info("emulator log loaded", zap.String("file", l.path), zap.Int("records", count))
	return nil
}

// appendBatch writes records (of the streams in names) as one write and
// fsyncs. On failure the file is cut back to its previous size.
func (l *logFile) appendBatch(recs []*record, names []string) error {
	buf := l.buf[:0]
	for i, r := range recs {
		start := len(buf)
		buf = append(buf, make([]byte, frameHeader)...)
		buf = encodeRecord(buf, r, names[i])
		payload := buf[start+frameHeader:]
		if len(payload) > maxFramePayload {
			return fmt.Errorf("record of %d bytes is too large for the log", len(payload))
		}
		binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
		binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crcTable))
	}
	if cap(buf) <= 1<<20 {
		l.buf = buf
	}
	if _, err := l.f.Write(buf); err != nil {
		return l.rollback(fmt.Errorf("write %s: %w", l.path, err))
	}
	if err := l.f.Sync(); err != nil {
		return l.rollback(fmt.Errorf("sync %s: %w", l.path, err))
	}
	l.size += int64(len(buf))
	return nil
}

// rollback cuts the file back to its last complete write.
func (l *logFile) rollback(cause error) error {
	if err := l.f.Truncate(l.size); err != nil {
		return errors.Join(cause, err)
	}
	if _, err := l.f.Seek(l.size, io.SeekStart); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

func (l *logFile) close() error {
	if err := l.f.Sync(); err != nil {
		_ = l.f.Close()
		return fmt.Errorf("emulator: sync log %s: %w", l.path, err)
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("emulator: close log %s: %w", l.path, err)
	}
	return nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func encodeRecord(b []byte, r *record, name string) []byte {
	b = binary.AppendUvarint(b, r.pos)
	b = binary.AppendVarint(b, r.number)
	b = append(b, r.flags)
	b = append(b, r.id[:]...)
	b = binary.AppendVarint(b, r.created)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(len(r.typ)))
	b = append(b, r.typ...)
	b = appendBytes(b, r.data)
	b = appendBytes(b, r.meta)
	return b
}

// decodeRecord parses a frame payload. Data and metadata alias payload.
// Records of one write share their timestamp, so the decimal form of the
// previous record's timestamp is reused when it matches (prev may be nil).
func decodeRecord(p []byte, prev *record) (*record, string, error) {
	d := decoder{p: p}
	r := &record{}
	r.pos = d.uvarint()
	r.number = d.varint()
	r.flags = d.byte()
	copy(r.id[:], d.take(16))
	r.created = d.varint()
	name := string(d.bytes())
	r.typ = string(d.bytes())
	r.data = d.bytes()
	r.meta = d.bytes()
	if d.err != nil {
		return nil, "", d.err
	}
	if len(d.p) != 0 {
		return nil, "", fmt.Errorf("%d unexpected bytes after the record", len(d.p))
	}
	if name == "" {
		return nil, "", errors.New("record without a stream name")
	}
	if prev != nil && prev.created == r.created {
		r.createdStr = prev.createdStr
	} else {
		r.createdStr = strconv.FormatInt(r.created, 10)
	}
	if r.id == uuid.Nil {
		return nil, "", errors.New("record without an event id")
	}
	return r, name, nil
}

type decoder struct {
	p   []byte
	err error
}

var errShortRecord = errors.New("record payload is truncated")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) byte() byte {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.p) < n {
		d.err = errShortRecord
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.p)) {
		d.err = errShortRecord
		return nil
	}
	return d.take(int(n))
}
