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
func openGathering(uri *url.URL, o paho.ClientOptions) (*gatherConn, error) {
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
	// opened: paho has written its first packet, the CONNECT; only then may a PUBLISH follow
	// (MQTT 3.1.1, 3.1.4: a client may send further packets right after its CONNECT).
	opened bool
}

func newGatherConn(c net.Conn, window time.Duration) *gatherConn {
	return &gatherConn{Conn: c, window: window}
}

func (c *gatherConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.roomLocked(len(p)); err != nil {
		return 0, err
	}
	c.opened = true
	c.buf = append(c.buf, p...)
	c.armLocked()
	return len(p), nil
}

// errNotOpened: the connection's CONNECT has not been written yet.
var errNotOpened = errors.New("mqtt connection not opened yet")

// publish0 gathers a QoS 0 PUBLISH of payload on topic (not retained), written here rather than
// by paho: paho builds every packet in a buffer of its own, a copy of the payload that was a
// sixth of what a 500-rack room's daemon allocated (docs/PERFORMANCE.md). The payload is copied
// before publish0 returns, so its buffer may be used again at once. Each packet goes into the
// gathered bytes whole, under the lock paho's writes take, so packets never interleave.
func (c *gatherConn) publish0(topic string, payload []byte) error {
	if len(topic) == 0 || len(topic) > 0xffff {
		return fmt.Errorf("mqtt topic of %d bytes (1 to 65535)", len(topic))
	}
	rest := 2 + len(topic) + len(payload)
	if rest > maxRemaining {
		return fmt.Errorf("mqtt message of %d bytes on %s: more than MQTT's %d", rest, topic, maxRemaining)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !c.opened {
		return errNotOpened
	}
	if err := c.roomLocked(5 + rest); err != nil {
		return err
	}
	c.buf = append(c.buf, 0x30) // PUBLISH, QoS 0, not a duplicate, not retained
	for n := rest; ; {
		b := byte(n & 0x7f)
		if n >>= 7; n > 0 {
			c.buf = append(c.buf, b|0x80)
			continue
		}
		c.buf = append(c.buf, b)
		break
	}
	c.buf = append(c.buf, byte(len(topic)>>8), byte(len(topic)))
	c.buf = append(c.buf, topic...)
	c.buf = append(c.buf, payload...)
	c.armLocked()
	return nil
}

// maxRemaining is the largest remaining length an MQTT packet can say (4 bytes of it).
const maxRemaining = 268_435_455

// roomLocked fails with the connection's error, and writes out what is gathered first if n
// more bytes would take it past gatherMax.
func (c *gatherConn) roomLocked(n int) error {
	if c.err != nil {
		return c.err
	}
	if len(c.buf)+n > gatherMax {
		return c.flushLocked()
	}
	return nil
}

// armLocked starts the gather window if it is not running.
func (c *gatherConn) armLocked() {
	if !c.armed {
		c.armed = true
		if c.timer == nil {
			c.timer = time.AfterFunc(c.window, c.flushTimed)
		} else {
			c.timer.Reset(c.window)
		}
	}
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
