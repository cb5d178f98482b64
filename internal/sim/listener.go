package sim

import (
	"net"
	"sync"
)

// listener accepts TCP connections and serves each in a goroutine it owns. Close stops accepting,
// closes every open connection (also ones a handler registered with track, such as a proxy's
// upstream) and waits for the handlers.
type listener struct {
	l    net.Listener
	mu   sync.Mutex
	open map[net.Conn]bool
	wg   sync.WaitGroup
}

// listen binds addr; nothing is accepted until start, so the owner can finish setting itself up.
func listen(addr string) (*listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{l: l, open: map[net.Conn]bool{}}, nil
}

// start accepts connections, each served by serve in a goroutine of its own.
func (ln *listener) start(serve func(net.Conn)) {
	l := ln.l
	ln.wg.Add(1)
	go func() {
		defer ln.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ln.track(c, true)
			ln.wg.Add(1)
			go func() {
				defer ln.wg.Done()
				defer ln.track(c, false)
				defer c.Close()
				serve(c)
			}()
		}
	}()
}

// Addr is the address listened on.
func (ln *listener) Addr() string { return ln.l.Addr().String() }

// track registers (on) or forgets a connection that Close must close.
func (ln *listener) track(c net.Conn, on bool) {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if on {
		ln.open[c] = true
	} else {
		delete(ln.open, c)
	}
}

func (ln *listener) Close() error {
	err := ln.l.Close()
	ln.mu.Lock()
	for c := range ln.open {
		c.Close()
	}
	ln.mu.Unlock()
	ln.wg.Wait()
	return err
}
