// Package logging builds the one zap logger each binary makes in its main (STYLE: built in cmd,
// passed down): JSON lines with ISO 8601 times, so that the daemon's and the agent's logs read
// and parse alike.
package logging

import (
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger writing JSON lines of level and above to w.
func New(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), level))
}

// Human is a logger for a person at a terminal (the demo): one readable line per entry, "daemon:
// ERROR message key=value", not JSON.
func Human(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zapcore.EncoderConfig{MessageKey: "msg", LevelKey: "level", EncodeLevel: zapcore.CapitalLevelEncoder,
		NameKey: "logger", EncodeName: zapcore.FullNameEncoder, ConsoleSeparator: " "}
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)).Named("daemon:")
}
