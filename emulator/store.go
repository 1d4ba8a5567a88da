package emulator

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Store is the emulator's event log: one global, append-only log of records
// ($all) with per-stream indexes, stream metadata, soft and hard deletes and
// optimistic concurrency, optionally persisted to a log file in
// StoreOptions.DataDir.
//
// Positions are virtual byte offsets: each record advances the writer's end
// offset by a plausible record size, so positions are strictly increasing but
// not contiguous, and commit == prepare == the record's offset, as for the
// self-committed records of a real single node.
//
// Readers take the read lock only to copy a page of record pointers (always
// released with defer); records are immutable once written, so filters are
// matched after the lock is released. Subscribers are woken by a broadcast channel
// that is closed and replaced on each commit, and read the log themselves, so
// a slow subscriber never holds back appends or other subscribers.
type Store struct {
	opts StoreOptions
	now  func() time.Time
	log  *zap.Logger

	// writeMu serializes writers: checks, persistence and publication of one
	// write happen under it. Only writers mutate state, so a writer may read
	// state under writeMu alone; mu guards state against concurrent readers.
	writeMu sync.Mutex
	file    *logFile // nil for an in-memory store

	mu      sync.RWMutex
	recs    []*record
	end     uint64 // writer's end offset: the position of the next record
	streams map[string]*stream
	ids     map[uuid.UUID]*record // first record with each event id
	notify  chan struct{}         // closed and replaced on each commit
	drop    chan struct{}         // closed and replaced by DropSubscriptions
	dropErr error                 // the error of the last DropSubscriptions
	closed  bool
	done    chan struct{} // closed by Close

	subs  atomic.Int64               // active subscriptions
	hooks atomic.Pointer[storeHooks] // test hooks; nil in normal use

	types map[string]string // interned event types (writers only)
}

// StoreOptions configure OpenStore.
type StoreOptions struct {
	// DataDir is the directory of the persisted log; "" keeps the log in
	// memory only. The directory is created if needed and an existing log in
	// it is reloaded.
	DataDir string
	// Secure seeds the $users, $user-admin and $user-ops streams a node with
	// authentication enabled has.
	Secure bool
	// Now is the clock for event timestamps and $maxAge; nil means time.Now.
	Now func() time.Time
	// Logger receives the store's few log lines (reload, torn tail); nil
	// logs to stderr.
	Logger *zap.Logger
	// FilterBudget is the time a read's or subscription's filter may spend
	// on one page of records; 0 means DefaultFilterBudget.
	FilterBudget time.Duration
	// MaxSubscriptions caps the subscriptions served at once; 0 means
	// DefaultMaxSubscriptions.
	MaxSubscriptions int
}

// OpenStore opens a store: in memory, or persisted in opts.DataDir, reloading
// the log found there. A fresh store is seeded with the system events a new
// node writes.
func OpenStore(opts StoreOptions) (*Store, error) {
	s := &Store{
		opts:    opts,
		now:     opts.Now,
		log:     opts.Logger,
		end:     firstRecordOffset,
		streams: make(map[string]*stream),
		ids:     make(map[uuid.UUID]*record),
		notify:  make(chan struct{}),
		drop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
			zapcore.Lock(os.Stderr), zap.InfoLevel))
	}
	if opts.DataDir != "" {
		f, err := openLogFile(opts.DataDir, s.log, s.applyLoaded)
		if err != nil {
			return nil, err
		}
		s.file = f
	}
	if len(s.recs) == 0 {
		if err := s.seed(); err != nil {
			if s.file != nil {
				_ = s.file.close()
			}
			return nil, fmt.Errorf("emulator: seed log: %w", err)
		}
	}
	return s, nil
}

// firstRecordOffset is where the first record goes: a real log starts with
// system records (epoch information), so every event sits at a position > 0.
const firstRecordOffset = 256

// recordOverhead approximates the fixed part of a prepare record on disk.
const recordOverhead = 92

func recordSize(stream, typ string, data, meta []byte) uint64 {
	return uint64(recordOverhead + len(stream) + len(typ) + len(data) + len(meta))
}

// Close closes the log file (if any) and ends every subscription with
// Unavailable. Later writes fail with ErrStoreClosed. Close is idempotent.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	if s.file != nil {
		return s.file.close()
	}
	return nil
}

// DropSubscriptions ends every subscription active at the time of the call
// with err (a gRPC status error; nil means Unavailable). Later subscriptions
// are not affected.
func (s *Store) DropSubscriptions(err error) {
	if err == nil {
		err = status.Error(codes.Unavailable, "Subscriptions Dropped")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropErr = err
	close(s.drop)
	s.drop = make(chan struct{})
}

// ActiveSubscriptions is the number of subscriptions being served.
func (s *Store) ActiveSubscriptions() int { return int(s.subs.Load()) }

// Head returns the writer's end offset (the position the next record will
// get) and the number of records in the log.
func (s *Store) Head() (end uint64, records int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.end, len(s.recs)
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// maxInternedTypes bounds the event-type intern table.
const maxInternedTypes = 10000

// internType returns one shared copy of an event type, so a long log of
// few types does not hold a string per record. Callers hold writeMu.
func (s *Store) internType(typ string) string {
	if t, ok := s.types[typ]; ok {
		return t
	}
	if s.types == nil {
		s.types = make(map[string]string)
	}
	if len(s.types) < maxInternedTypes {
		s.types[typ] = typ
	}
	return typ
}

// seed writes the system events a fresh node has.
func (s *Store) seed() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	w := s.newWrite()
	w.add("$$$scavenges", -1, uuid.New(), metadataEventType, flagJSON,
		[]byte(`{"$maxAge":2592000,"$acl":{"$w":"$admins","$d":"$admins","$mw":"$admins","$r":"$ops"}}`), nil)
	if s.opts.Secure {
		users := []struct{ login, full, group string }{
			{"admin", "KurrentDB Administrator", "$admins"},
			{"ops", "KurrentDB Operations", "$ops"},
		}
		for _, u := range users {
			w.add("$user-"+u.login, -1, uuid.New(), "$UserCreated", flagJSON, []byte(fmt.Sprintf(
				`{"loginName":%q,"fullName":%q,"salt":"","hash":"","disabled":false,"groups":[%q]}`,
				u.login, u.full, u.group)), nil)
			w.add("$users", -1, uuid.New(), "$User", flagJSON, []byte(strconv.Quote(u.login)), nil)
		}
	}
	return s.commit(w)
}
