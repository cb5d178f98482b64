// Package mqttx is Firebreak's MQTT plumbing over paho: a publisher that never drops a critical
// message on a transient failure, and a small embedded broker (mochi-mqtt) for standalone sites
// and the demo. Topics and payloads are internal/wire's business, not this package's.
package mqttx

import (
	"context"
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/wire"
)

// Options configure a publisher's connection.
type Options struct {
	Brokers  []string
	ClientID string
	Username string
	Password string
	// WillTopic/WillPayload: the retained last will (the node's offline status).
	WillTopic   string
	WillPayload []byte
	// OnConnect runs after every (re)connect, in paho's goroutine: it must not block.
	OnConnect func()
}

// Client publishes wire messages.
type Client struct {
	c   paho.Client
	log *zap.Logger
}

// ErrNotConnected says the broker could not be reached before the context ended.
var ErrNotConnected = errors.New("mqtt: not connected")

// Dial connects, retrying until ctx ends.
func Dial(ctx context.Context, o Options, log *zap.Logger) (*Client, error) {
	po := paho.NewClientOptions()
	for _, b := range o.Brokers {
		po.AddBroker(b)
	}
	po.SetClientID(o.ClientID)
	po.SetUsername(o.Username)
	po.SetPassword(o.Password)
	po.SetCleanSession(true)
	// Handlers must not block each other; ordering of our publishes is ours to keep (one
	// publisher goroutine), not paho's.
	po.SetOrderMatters(false)
	po.SetAutoReconnect(true)
	po.SetConnectRetry(true)
	po.SetConnectRetryInterval(500 * time.Millisecond)
	po.SetMaxReconnectInterval(5 * time.Second)
	po.SetConnectTimeout(5 * time.Second)
	po.SetKeepAlive(10 * time.Second)
	if o.WillTopic != "" {
		po.SetBinaryWill(o.WillTopic, o.WillPayload, 1, true)
	}
	po.SetOnConnectHandler(func(paho.Client) {
		log.Info("mqtt connected")
		if o.OnConnect != nil {
			o.OnConnect()
		}
	})
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		log.Warn("mqtt connection lost", zap.Error(err))
	})
	c := paho.NewClient(po)
	tok := c.Connect()
	if err := wait(ctx, tok); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("mqtt connect %v: %w", o.Brokers, err)
	}
	return &Client{c: c, log: log}, nil
}

func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrNotConnected, ctx.Err())
	}
}

// Publish sends m and, for QoS 1, waits for the broker's PUBACK. A critical message is retried
// with backoff until it is acknowledged or ctx ends; the error says which.
func (c *Client) Publish(ctx context.Context, m wire.Message) error {
	backoff := 100 * time.Millisecond
	for {
		tok := c.c.Publish(m.Topic, m.QoS, m.Retain, []byte(m.Payload))
		err := wait(ctx, tok)
		if err == nil || !m.Critical {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish %s: %w", m.Topic, err)
		}
		c.log.Warn("publish failed, retrying", zap.String("topic", m.Topic), zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("publish %s: %w", m.Topic, ctx.Err())
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Close disconnects cleanly (the broker does not send the last will), after final is published.
func (c *Client) Close(final *wire.Message) {
	if final != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := c.Publish(ctx, *final); err != nil {
			c.log.Warn("final status not published", zap.Error(err))
		}
		cancel()
	}
	c.c.Disconnect(500)
}
