module github.com/firebreak-dc/firebreak

go 1.26.0

// Why each direct dependency is here:
//   goburrow/modbus, goburrow/serial  Modbus client (pinned: the proxy will not list their versions).
//   simonvetter/modbus                server side of the simulator: an independent implementation,
//                                     so our client is tested against code we did not write.
//   eclipse/paho.mqtt.golang          MQTT client of the daemon and of the tests' subscribers.
//   mochi-mqtt/server/v2              embedded broker for `firebreak demo` and standalone sites.
//   influxdata/influxdb-client-go/v2  telemetry sink.
//   go.uber.org/zap                   structured logging.
//   gopkg.in/yaml.v3                  config, profiles and scenarios (strict decoding of unknown keys).
//   gowebpki/jcs                      RFC 8785 canonical JSON, the bytes a drain signal's signature covers.
//   golang.org/x/sync                 errgroup: every goroutine has an owner that waits for it.
//   golang.org/x/net                  its proxy package: paho's own way of dialling a broker (a proxy
//                                     from the environment), kept where mqttx dials for paho.
//   go.etcd.io/bbolt                  the durable MQTT outbox in state_dir: fsync'd transactions,
//                                     one file, no server, a single writer (the engine loop).
//   google.golang.org/protobuf        Sparkplug B payloads (internal/sparkplug/spb, generated from the
//                                     specification's schema); already in the build through Prometheus.
//   prometheus/client_golang          /metrics: the exposition format Prometheus parses, Go runtime
//                                     and process (CPU, RSS, fds) metrics; its expfmt parses it in tests.
require gopkg.in/yaml.v3 v3.0.1

require (
	github.com/eclipse/paho.mqtt.golang v1.5.1
	github.com/goburrow/modbus v0.1.0
	github.com/gowebpki/jcs v1.0.2
	github.com/influxdata/influxdb-client-go/v2 v2.14.0
	github.com/mochi-mqtt/server/v2 v2.7.9
	github.com/prometheus/client_golang v1.23.2
	github.com/prometheus/client_model v0.6.2
	github.com/prometheus/common v0.66.1
	github.com/simonvetter/modbus v1.6.4
	go.etcd.io/bbolt v1.4.3
	go.uber.org/zap v1.28.0
	golang.org/x/net v0.44.0
	golang.org/x/sync v0.24.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/apapsch/go-jsonmerge/v2 v2.0.0 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/goburrow/serial v0.1.0 // indirect
	github.com/google/uuid v1.3.1 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/influxdata/line-protocol v0.0.0-20200327222509-2487e7298839 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/oapi-codegen/runtime v1.0.0 // indirect
	github.com/prometheus/procfs v0.16.1 // indirect
	github.com/rs/xid v1.4.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	golang.org/x/sys v0.36.0 // indirect
)
