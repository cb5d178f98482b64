package mqttx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// Writes to the broker are gathered for gatherWindow before they go out in one system call. paho
// writes every packet on its own: 500 devices' telemetry a second was 500 writes (each a trip
// through the kernel's TCP path and a wake-up of the broker), the largest single cost of the
// daemon on a large room (docs/PERFORMANCE.md). 5 ms is nothing beside the seconds a drain signal
// has, and a QoS 1 message is still only done when its PUBACK comes back.
const (
	gatherWindow = 5 * time.Millisecond
	gatherMax    = 64 << 10 // written at once when this much is waiting
	// closeFlush bounds how long Close may wait to write what is gathered (the DISCONNECT).
	closeFlush = 500 * time.Millisecond
)

// openGathering is paho's OpenConnectionFunc for the schemes the config allows (tcp and mqtt in
// the clear, ssl, tls and mqtts over TLS), dialling as paho itself does (a proxy from the
// environment for plain TCP, none for TLS unless all_proxy is set), with writes gathered.
func openGathering(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	var c net.Conn
	var err error
	switch uri.Scheme {
	case "tcp", "mqtt":
		c, err = proxy.FromEnvironmentUsing(d).Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts":
		c, err = tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
	default:
		return nil, fmt.Errorf("broker %s: scheme %q is not one of tcp, mqtt, ssl, tls, mqtts", uri.Redacted(), uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return newGatherConn(c, gatherWindow), nil
}

// gatherConn is a connection whose writes wait up to window to go out together. A write error
// is kept: it closes the connection (so that paho's reader sees the loss at once) and is returned
// by every later Write.
type gatherConn struct {
	net.Conn
	window time.Duration

	mu    sync.Mutex
	buf   []byte
	err   error
	timer *time.Timer
	armed bool
}

func newGatherConn(c net.Conn, window time.Duration) *gatherConn {
	return &gatherConn{Conn: c, window: window}
}

func (c *gatherConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.buf)+len(p) > gatherMax {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	c.buf = append(c.buf, p...)
	if !c.armed {
		c.armed = true
		if c.timer == nil {
			c.timer = time.AfterFunc(c.window, c.flushTimed)
		} else {
			c.timer.Reset(c.window)
		}
	}
	return len(p), nil
}

func (c *gatherConn) flushTimed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	_ = c.flushLocked()
}

func (c *gatherConn) flushLocked() error {
	if c.err != nil || len(c.buf) == 0 {
		return c.err
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		c.err = err
		_ = c.Conn.Close()
	}
	return err
}

// Close writes what is gathered (paho's DISCONNECT) within closeFlush, then closes. The deadline
// is set first, so that a write stuck on a broker that stopped reading gives up too.
func (c *gatherConn) Close() error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	err := c.flushLocked()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	if cerr := c.Conn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		return cerr
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
