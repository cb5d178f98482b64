package daemon

import (
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// command verifies and performs one operator command, and always answers on
// P/cmd/result/<instance>: done, or refused with the reason (then nothing changed). Only a failure
// to write the outbox is returned: that is the daemon's failure, not the command's.
func (l *engineLoop) command(rc rawCommand) error {
	switch {
	case rc.ack:
		return l.ack(rc)
	case rc.peerStatus:
		l.peerStatus(rc.payload)
		return nil
	case rc.peerSignal:
		l.peerSignal(rc.payload)
		return nil
	}
	now := l.clk.Now()
	verb := clip(rc.topic[strings.LastIndexByte(rc.topic, '/')+1:])
	var c cutover.Command
	var err error
	if rc.oversize > 0 {
		err = fmt.Errorf("%w: the payload is %d bytes; a command may be at most %d (refused unread)", cutover.ErrCmdMalformed, rc.oversize, wire.MaxCommandBytes)
	} else {
		c, err = cutover.VerifyCommand(rc.payload, verb, l.instance, l.operators, now, l.cmdMaxAge)
	}
	if err == nil {
		var fresh bool
		fresh, err = l.ob.UseNonce(c.Operator+"/"+c.Nonce, now.Add(2*l.cmdMaxAge), now)
		if err != nil {
			return err
		}
		if !fresh {
			err = cutover.ErrCmdReplayed
		}
	}
	var msgs []wire.Message
	if err == nil {
		msgs, err = l.pipe.Command(c, now)
	}
	// What a refused command said is echoed only in short: a result or a log line must never
	// carry an attacker's megabytes.
	res := wire.CommandResult{Command: verb, Operator: clip(c.Operator), Nonce: clip(c.Nonce), Alarm: clip(c.Alarm), Zone: clip(c.Zone), OK: err == nil}
	if err != nil && !l.refusals.allow(now) {
		// A flood of refused commands gets no flood of results: counted, said once in a while.
		l.unanswered++
		if l.unanswered%1000 == 1 {
			l.log.Warn("refused operator commands not answered: more than 5 a second", zap.Int("unanswered", l.unanswered))
		}
		return nil
	}
	if err != nil {
		res.Error = clipN(err.Error(), 512)
		level := zap.WarnLevel
		if errors.Is(err, cutover.ErrCmdBadSignature) || errors.Is(err, cutover.ErrCmdUnknownOperator) || errors.Is(err, cutover.ErrCmdReplayed) {
			level = zap.ErrorLevel // someone is sending commands they may not
		}
		l.log.Log(level, "operator command refused", zap.String("command", verb), zap.String("operator", res.Operator), zap.String("error", res.Error))
	} else {
		l.log.Info("operator command done", zap.String("command", verb), zap.String("operator", c.Operator),
			zap.String("alarm", c.Alarm), zap.String("zone", c.Zone), zap.String("reason", c.Reason))
	}
	return l.put(append(msgs, l.enc.Result(res, now)))
}

// ack takes a consumer's acknowledgement of a drain signal from P/drain/<zone>/ack/<consumer>.
// Acks are not commands: a bad one is logged, not answered.
func (l *engineLoop) ack(rc rawCommand) error {
	tp, ok := l.enc.T.Parse(rc.topic)
	if !ok || tp.Kind != wire.KindDrainAck {
		return nil
	}
	zone, consumer := clip(tp.Zone), clip(tp.Consumer)
	if len(rc.payload) == 0 {
		return nil // a cleared retained ack
	}
	a, err := cutover.ParseAck(rc.payload, zone, consumer)
	var msgs []wire.Message
	if err == nil {
		msgs, err = l.pipe.Ack(a, l.clk.Now())
	}
	if err != nil {
		lvl := zap.WarnLevel
		if errors.Is(err, cutover.ErrStaleAck) {
			lvl = zap.DebugLevel // a retained ack of an earlier episode, delivered on connect
		}
		l.log.Log(lvl, "drain ack not taken", zap.String("zone", zone), zap.String("consumer", consumer), zap.Error(err))
		return nil
	}
	l.log.Info("drain ack", zap.String("zone", zone), zap.String("consumer", consumer), zap.String("signal_id", a.SignalID),
		zap.String("status", string(a.Status)), zap.String("detail", a.Detail))
	return l.put(msgs)
}

// clip shortens a string that came from outside (a topic level, a field of a refused command) for
// a result or a log line.
func clip(s string) string { return clipN(s, 128) }

func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(s[:n], ""), len(s))
}
