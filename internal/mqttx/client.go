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
	"os"
	"sync"
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
	// WillTopic/WillPayload: the retained last will (the node's offline status).
	WillTopic   string
	WillPayload []byte
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

// Client is a paho client with Firebreak's settings.
type Client struct {
	c        paho.Client
	log      *zap.Logger
	connects chan struct{}
	mu       sync.Mutex
	subToks  []subToken
}

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
	cl := &Client{log: log, connects: make(chan struct{}, 1)}
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
	po.SetAutoReconnect(true)
	po.SetConnectRetry(true)
	po.SetConnectRetryInterval(500 * time.Millisecond)
	po.SetMaxReconnectInterval(5 * time.Second)
	po.SetConnectTimeout(5 * time.Second)
	po.SetKeepAlive(10 * time.Second)
	po.SetPingTimeout(5 * time.Second)
	if o.WillTopic != "" {
		po.SetBinaryWill(o.WillTopic, o.WillPayload, 1, true)
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
		log.Warn("mqtt connection lost", zap.Error(err))
	})
	cl.c = paho.NewClient(po)
	cl.c.Connect() // with ConnectRetry its token completes only when connected; nobody waits on it
	return cl, nil
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
	c.c.Disconnect(500)
}
