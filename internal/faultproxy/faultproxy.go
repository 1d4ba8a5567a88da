// Package faultproxy is a TCP proxy for fault-injection tests. It listens on a loopback port and
// forwards every connection to a target (PostgreSQL, KurrentDB, ...), and on command cuts every
// connection at once, stops forwarding (a black hole: connections stay open, bytes do not
// move), adds latency, or refuses new connections. Put it between the program under test and
// a server, point the program at Addr, and inject faults while it runs.
//
// Every goroutine a Proxy starts ends by the time Close returns.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSize is the largest read forwarded as one piece.
const chunkSize = 32 << 10

// queueChunks is how many chunks a direction holds in flight (under latency or a pause) before
// it stops reading, so the sender feels back-pressure as from a slow network.
const queueChunks = 64

// DialTimeout bounds connecting to the target.
const DialTimeout = 5 * time.Second

// Proxy forwards TCP connections from its listener to a target, with faults on command. Its
// methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every link's goroutines

	latency  atomic.Int64 // nanoseconds
	accepted atomic.Int64

	mu       sync.Mutex
	links    map[*link]struct{}
	paused   bool
	resume   chan struct{} // closed when forwarding resumes; valid while paused
	refusing bool
	closed   bool
}

// New starts a Proxy on a free loopback port (127.0.0.1) forwarding to target ("host:port").
func New(target string) (*Proxy, error) { return Listen("127.0.0.1:0", target) }

// Listen starts a Proxy listening on addr and forwarding to target ("host:port").
func Listen(addr, target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", addr, err)
	}
	p := &Proxy{target: target, ln: ln, links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to ("127.0.0.1:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Accepted is the number of connections accepted so far (refused ones included).
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Active is the number of connections open now.
func (p *Proxy) Active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// CutAll closes every open connection at once, both sides, with a TCP reset where the system
// allows, as a crashed server or a broken network would. It returns how many it cut. New
// connections are accepted as before.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
	return len(links)
}

// Pause stops forwarding in both directions, on open and new connections: bytes already read
// are held, new connections are accepted but not yet connected to the target. Nothing is
// closed, so clients see a silent network until Resume (or their own timeouts).
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused = true
		p.resume = make(chan struct{})
	}
}

// Resume ends a Pause: held bytes are delivered in order and forwarding goes on.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resume)
	}
}

// SetLatency delays every chunk of bytes by d in each direction (0 removes the delay). It
// applies to bytes read from now on.
func (p *Proxy) SetLatency(d time.Duration) {
	if d < 0 {
		d = 0
	}
	p.latency.Store(int64(d))
}

// SetRefusing makes the proxy close new connections as soon as it accepts them (on), as a
// server that is down would, or accept them again (off). Open connections are not affected.
func (p *Proxy) SetRefusing(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = on
}

// Close stops listening, closes every connection and waits for all of the proxy's goroutines
// to end. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("faultproxy: close listener: %w", err)
	}
	return nil
}

// gate returns a channel that is closed while forwarding is allowed.
func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		return p.resume
	}
	return open
}

var open = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // e.g. too many open files: try again shortly
			continue
		}
		p.accepted.Add(1)
		ctx, cancel := context.WithCancel(context.Background())
		l := &link{p: p, client: c, ctx: ctx, cancel: cancel, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed || p.refusing {
			p.mu.Unlock()
			cancel()
			_ = c.Close()
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run()
	}
}

// link is one proxied connection: the client's side and, once dialled, the target's.
type link struct {
	p      *Proxy
	client net.Conn
	ctx    context.Context // ends when the link closes, cancelling a dial in progress
	cancel context.CancelFunc

	mu     sync.Mutex
	server net.Conn // nil until dialled
	closed bool
	done   chan struct{}
}

func (l *link) run() {
	defer l.p.wg.Done()
	defer l.forget()
	defer l.close(false)
	select { // a new connection waits out a pause before reaching the target
	case <-l.p.gate():
	case <-l.done:
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, DialTimeout)
	var d net.Dialer
	server, err := d.DialContext(ctx, "tcp", l.p.target)
	cancel()
	if err != nil {
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = server.Close()
		return
	}
	l.server = server
	l.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { l.pipe(l.client, server) })
	wg.Go(func() { l.pipe(server, l.client) })
	wg.Wait()
}

func (l *link) forget() {
	l.p.mu.Lock()
	delete(l.p.links, l)
	l.p.mu.Unlock()
}

// close closes both sides; reset asks for a TCP reset instead of an orderly close.
func (l *link) close(reset bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.done)
	l.cancel()
	for _, c := range []net.Conn{l.client, l.server} {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

type chunk struct {
	b  []byte
	at time.Time // when it may be delivered
}

// pipe copies src to dst chunk by chunk, each delayed by the latency in force when it was read
// and held while the proxy is paused. At src's end it half-closes dst; on any error it closes
// the whole link.
func (l *link) pipe(src, dst net.Conn) {
	q := make(chan chunk, queueChunks)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(q)
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				c := chunk{b: append([]byte(nil), buf[:n]...), at: time.Now().Add(time.Duration(l.p.latency.Load()))}
				select {
				case q <- c:
				case <-l.done:
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					l.close(false)
				}
				return
			}
		}
	})
	defer wg.Wait()
	for c := range q {
		if d := time.Until(c.at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
		}
		select {
		case <-l.p.gate():
		case <-l.done:
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			l.close(false)
			return
		}
	}
	select {
	case <-l.done:
		return
	default:
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		l.close(false)
	}
}
