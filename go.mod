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
require gopkg.in/yaml.v3 v3.0.1

require (
	github.com/goburrow/modbus v0.1.0 // indirect
	github.com/goburrow/serial v0.1.0 // indirect
	github.com/gowebpki/jcs v1.0.2 // indirect
	github.com/simonvetter/modbus v1.6.4 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
)
