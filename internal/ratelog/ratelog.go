// Package ratelog bounds how often one kind of warning is logged: a flood of refused input (a
// broker open to anyone, a misbehaving client) must not become a flood of log lines, and the
// line that is logged says how many it stands for. It owns nothing else.
package ratelog

import (
	"sync"
	"time"

	"go.uber.org/zap/zapcore"

	"go.uber.org/zap"
)

// Log logs its message at most once every Every (the first at once), with the count since the
// last line. It is safe for concurrent use.
type Log struct {
	Every time.Duration
	Msg   string
	// Level is the level it logs at; zero: warn.
	Level zapcore.Level

	mu   sync.Mutex
	last time.Time
	n    int
}

// Add counts one more and logs at warn when due, with fields and the count.
func (l *Log) Add(log *zap.Logger, fields ...zap.Field) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if now := time.Now(); l.last.IsZero() || now.Sub(l.last) >= l.Every {
		level := l.Level
		if level == 0 {
			level = zapcore.WarnLevel
		}
		log.Log(level, l.Msg, append(fields, zap.Int("count", l.n), zap.Duration("logged_at_most_every", l.Every))...)
		l.last, l.n = now, 0
	}
}
