package mqttx

import (
	"fmt"
	"io"
	"log/slog"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is an embedded MQTT broker.
type Broker struct {
	srv  *mochi.Server
	Addr string // host:port it listens on
}

// StartBroker listens on addr (port 0 for a free one) and serves until Close. It allows anonymous
// clients: it is for loopback demos and standalone sites behind their own network controls.
func StartBroker(addr string) (*Broker, error) {
	srv := mochi.New(&mochi.Options{InlineClient: false, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Broker{srv: srv, Addr: tcp.Address()}, nil
}

// Close stops the broker.
func (b *Broker) Close() error { return b.srv.Close() }
