package daemon

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/firebreak-dc/firebreak/internal/trace"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// Replay drives a pipeline with a recorded trace exactly as the live daemon drives it with its
// pollers: every batch in time order, and a tick on every whole second, with the tick due before a
// batch performed first. emit gets each step's messages with the time they were made at. It
// stops when ctx is done, between batches and between ticks: the trace reader bounds the gap
// between rows, and nothing a trace holds may keep it from hearing a signal.
func Replay(ctx context.Context, tr *trace.Reader, pipe *Pipeline, emit func(time.Time, []wire.Message) error) error {
	var next time.Time
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if next.IsZero() {
			next = b.At.Truncate(time.Second).Add(time.Second)
		}
		for ticks := 1; !next.After(b.At); ticks++ {
			if ticks%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			msgs, err := pipe.Tick(next)
			if err != nil {
				return err
			}
			if err := emit(next, msgs); err != nil {
				return err
			}
			next = next.Add(time.Second)
		}
		msgs, err := pipe.Step(b)
		if err != nil {
			return err
		}
		if err := emit(b.At, msgs); err != nil {
			return err
		}
	}
}
