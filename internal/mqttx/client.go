// Package mqttx is Firebreak's MQTT plumbing over paho: a client that connects in the background
// (the daemon polls and detects while the broker is away), fails over between several brokers,
// speaks TLS, re-subscribes in OnConnect and tells its owner about every (re)connect; and a small
// embedded broker (mochi-mqtt) for standalone sites and the demo. Topics and payloads are
// internal/wire's business; durability is internal/outbox's.
package mqttx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/wire"
)

// Options configure a client's connection.
type Options struct {
	Brokers  []string // tried in order; paho fails over to the next on a connection failure
	ClientID string
	Username string
	Password string
	// TLS files (PEM); CAFile alone verifies the broker, CertFile+KeyFile add a client certificate.
	CAFile, CertFile, KeyFile string
	// WillTopic/WillPayload: the retained last will (the node's offline status), QoS 1.
	WillTopic   string
	WillPayload []byte
	// WillNotRetained makes the will an ordinary message (Sparkplug's NDEATH).
	WillNotRetained bool
	// OneSession: once the first connection made is lost, the client does not connect again and
	// Ended is closed (Sparkplug: every session has its own will).
	OneSession bool
	// Subscriptions are made again on every connect (the session is clean).
	Subscriptions []Subscription
}

// Subscription is a topic filter and its handler. Handlers run in paho's goroutines and must not
// block: hand the message to an owner goroutine and return.
type Subscription struct {
	Topic  string
	QoS    byte
	Handle func(topic string, payload []byte)
}

// Client is a paho client with Firebreak's settings. It makes its own connection attempts (paho
// retries silently): a broker that refuses says why in the log, with its reason, and a broker
// that drops every connection right after it is made (another client with our client id: a
// second daemon with the same instance name) is named for what it is.
type Client struct {
	c        paho.Client
	log      *zap.Logger
	brokers  []string
	connects chan struct{}
	lost     chan error
	done     chan struct{}
	stopped  chan struct{}
	mu       sync.Mutex
	subToks  []subToken
	conflict string // why the client id looks taken over ("" when not)
	closing  sync.Once
	conn     atomic.Pointer[gatherConn] // the newest connection paho opened
}

// Connection attempts: retried from retryMin doubling to retryMax; a refusal is logged at once
// and then at most every refusedLogEvery. A connection lost within takeoverWithin of being made,
// takeoverAfter times in takeoverWindow, is a client-id takeover. takeoverWithin is well above
// retryMax, the wait of a client that has seen the takeover: the other client's connections,
// which that wait lets last that long, must count as quick too, so that both name it.
const (
	retryMin        = 500 * time.Millisecond
	retryMax        = 5 * time.Second
	refusedLogEvery = 30 * time.Second
	takeoverWithin  = 15 * time.Second
	takeoverAfter   = 3
	takeoverWindow  = time.Minute
)

type subToken struct {
	topic string
	tok   paho.Token
}

// ErrNotConnected says the broker could not be reached before the context ended.
var ErrNotConnected = errors.New("mqtt: not connected")

// TLSConfig builds a TLS config from PEM files; nil when none is set.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt tls ca_file %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("mqtt tls: cert_file and key_file go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Dial starts connecting in the background and returns at once: paho keeps retrying, across the
// brokers in order, until Close. Connects reports each successful (re)connect.
func Dial(o Options, log *zap.Logger) (*Client, error) {
	tlsCfg, err := TLSConfig(o.CAFile, o.CertFile, o.KeyFile)
	if err != nil {
		return nil, err
	}
	cl := &Client{log: log, brokers: o.Brokers, connects: make(chan struct{}, 1), lost: make(chan error, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	po := paho.NewClientOptions()
	for _, b := range o.Brokers {
		po.AddBroker(b)
	}
	po.SetClientID(o.ClientID)
	po.SetUsername(o.Username)
	po.SetPassword(o.Password)
	if tlsCfg != nil {
		po.SetTLSConfig(tlsCfg)
	}
	// A clean session: what must survive a disconnect is in our outbox, not in paho's memory store.
	po.SetCleanSession(true)
	// Handlers must not block each other; the order of our publishes is kept by one publisher
	// goroutine, not by paho.
	po.SetOrderMatters(false)
	po.SetAutoReconnect(false) // keepConnected does it, and says why an attempt failed
	po.SetConnectRetry(false)
	po.SetConnectTimeout(5 * time.Second)
	// paho's dialling, with writes gathered (gather.go); the newest connection is kept for
	// PublishTelemetry.
	po.SetCustomOpenConnectionFn(func(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
		c, err := openGathering(uri, o)
		if err != nil {
			return nil, err
		}
		cl.conn.Store(c)
		return c, nil
	})
	po.SetKeepAlive(10 * time.Second)
	po.SetPingTimeout(5 * time.Second)
	if o.WillTopic != "" {
		po.SetBinaryWill(o.WillTopic, o.WillPayload, 1, !o.WillNotRetained)
	}
	po.SetOnConnectHandler(func(c paho.Client) {
		log.Info("mqtt connected")
		var toks []subToken
		for _, s := range o.Subscriptions {
			handle := s.Handle
			toks = append(toks, subToken{s.Topic, c.Subscribe(s.Topic, s.QoS, func(_ paho.Client, m paho.Message) {
				handle(m.Topic(), m.Payload())
			})})
		}
		cl.mu.Lock()
		cl.subToks = append(cl.subToks, toks...)
		cl.mu.Unlock()
		select {
		case cl.connects <- struct{}{}:
		default:
		}
	})
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		select {
		case cl.lost <- err:
		default:
		}
	})
	cl.c = paho.NewClient(po)
	go cl.keepConnected(o.ClientID, o.OneSession)
	return cl, nil
}

// Ended is closed when the client stops connecting: after Close, or with OneSession once its
// connection is lost.
func (c *Client) Ended() <-chan struct{} { return c.stopped }

// slowConnect is how long a connect attempt may go unanswered before the log says so.
const slowConnect = 3 * time.Second

// keepConnected connects, and connects again after every loss, until Close.
func (c *Client) keepConnected(clientID string, oneSession bool) {
	defer close(c.stopped)
	wait, refused := time.Duration(0), 0
	var lastLogged time.Time
	var quick []time.Time // losses soon after a connect, within takeoverWindow
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
				return
			}
		}
		tok := c.c.Connect()
		// An unreachable broker (packets dropped) answers nothing for the whole connect timeout
		// of every broker listed: say so while it lasts, not only when the attempt gives up.
		slow := time.NewTimer(slowConnect)
		for waiting := true; waiting; {
			select {
			case <-tok.Done():
				waiting = false
			case <-slow.C:
				if refused == 0 {
					c.log.Warn("mqtt: still connecting (the broker does not answer: unreachable, or dropping packets?)",
						zap.Strings("brokers", c.brokers), zap.Duration("waited", slowConnect))
				}
			case <-c.done:
				slow.Stop()
				return
			}
		}
		slow.Stop()
		if err := tok.Error(); err != nil {
			refused++
			if now := time.Now(); refused == 1 || now.Sub(lastLogged) >= refusedLogEvery {
				c.log.Error("mqtt connect failed; trying again", zap.Error(err), zap.Int("attempts", refused),
					zap.String("hint", connectHint(err)))
				lastLogged = now
			}
			wait = min(max(2*wait, retryMin), retryMax)
			continue
		}
		if refused > 0 {
			c.log.Info("mqtt connected after failed attempts", zap.Int("attempts", refused))
		}
		refused, wait = 0, 0
		connectedAt := time.Now()
		var err error
		select {
		case err = <-c.lost:
		case <-c.done:
			return
		}
		if oneSession {
			c.log.Warn("mqtt connection lost; the session is over", zap.Error(err))
			return
		}
		now := time.Now()
		if now.Sub(connectedAt) < takeoverWithin {
			quick = append(quick, now)
		}
		for len(quick) > 0 && now.Sub(quick[0]) > takeoverWindow {
			quick = quick[1:]
		}
		if len(quick) >= takeoverAfter {
			why := fmt.Sprintf("the broker dropped %d connections within %s of each being made: another client is probably using client id %q (a second daemon with the same instance name, or mqtt.client_id set twice)",
				len(quick), takeoverWithin, clientID)
			c.mu.Lock()
			first := c.conflict == ""
			c.conflict = why
			c.mu.Unlock()
			if first {
				c.log.Error("mqtt client id taken over", zap.String("why", why), zap.Error(err))
			}
			wait = retryMax // do not fight the other client every half second
		} else {
			c.log.Warn("mqtt connection lost", zap.Error(err))
			if now.Sub(connectedAt) >= takeoverWindow {
				c.mu.Lock()
				if c.conflict != "" {
					c.log.Info("mqtt connection holds again; the client id is no longer contended")
				}
				c.conflict = ""
				c.mu.Unlock()
			}
		}
	}
}

// Conflict says why the client id looks taken over by another client ("" when it does not).
func (c *Client) Conflict() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conflict
}

// connectHint says what a connect error usually means.
func connectHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "not Authorized") || strings.Contains(msg, "bad user name or password"):
		return "the broker refused our credentials (mqtt.username, mqtt.password_file or FIREBREAK_MQTT_PASSWORD) or its ACL"
	case strings.Contains(msg, "identifier rejected"):
		return "the broker refused the client id (mqtt.client_id)"
	case strings.Contains(msg, "certificate") || strings.Contains(msg, "tls"):
		return "TLS: check mqtt.tls.ca_file against the broker's certificate, and the client pair"
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "i/o timeout"):
		return "no broker answers there: check mqtt.brokers and that it runs"
	}
	return ""
}

// Connects is signalled after every successful connect (it holds at most one pending signal).
func (c *Client) Connects() <-chan struct{} { return c.connects }

// Connected says the connection is up now.
func (c *Client) Connected() bool { return c.c.IsConnectionOpen() }

// CheckSubscriptions waits for the subscriptions made by the last connects and returns the
// first that failed.
func (c *Client) CheckSubscriptions(ctx context.Context) error {
	c.mu.Lock()
	toks := c.subToks
	c.subToks = nil
	c.mu.Unlock()
	for _, s := range toks {
		if err := wait(ctx, s.tok); err != nil {
			return fmt.Errorf("subscribe %s: %w", s.topic, err)
		}
	}
	return nil
}

func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrNotConnected, ctx.Err())
	}
}

// PublishTelemetry writes a QoS 0 message that is not retained straight into the connection's
// gathered writes, not through paho (gatherConn.publish0): payload is copied before it returns.
// Not connected, it fails with ErrNotConnected and sends nothing.
func (c *Client) PublishTelemetry(topic string, payload []byte) error {
	gc := c.conn.Load()
	if gc == nil || !c.Connected() {
		return ErrNotConnected
	}
	if err := gc.publish0(topic, payload); err != nil {
		if errors.Is(err, errNotOpened) || errors.Is(err, net.ErrClosed) {
			return ErrNotConnected
		}
		return err
	}
	return nil
}

// PublishAsync hands m to paho and returns its token: for QoS 1 it completes on the PUBACK.
func (c *Client) PublishAsync(m wire.Message) paho.Token {
	return c.c.Publish(m.Topic, m.QoS, m.Retain, []byte(m.Payload))
}

// Publish sends m and waits for its token (the PUBACK for QoS 1) or the end of ctx.
func (c *Client) Publish(ctx context.Context, m wire.Message) error {
	if err := wait(ctx, c.PublishAsync(m)); err != nil {
		return fmt.Errorf("publish %s: %w", m.Topic, err)
	}
	return nil
}

// Close disconnects cleanly (the broker does not send the last will), after final is published
// if the connection is up.
func (c *Client) Close(final *wire.Message) {
	if final != nil && c.Connected() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := c.Publish(ctx, *final); err != nil {
			c.log.Warn("final status not published", zap.Error(err))
		}
		cancel()
	}
	c.closing.Do(func() {
		close(c.done)
		<-c.stopped
		c.c.Disconnect(500)
	})
}
