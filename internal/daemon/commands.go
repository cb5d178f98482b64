package daemon

import (
	"bytes"
	"encoding/json"
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
	verb := rc.topic[strings.LastIndexByte(rc.topic, '/')+1:]
	c, err := cutover.VerifyCommand(rc.payload, verb, l.instance, l.operators, now, l.cmdMaxAge)
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
	res := wire.CommandResult{Command: verb, Operator: c.Operator, Nonce: c.Nonce, Alarm: c.Alarm, Zone: c.Zone, OK: err == nil}
	if err != nil {
		res.Error = err.Error()
		level := zap.WarnLevel
		if errors.Is(err, cutover.ErrCmdBadSignature) || errors.Is(err, cutover.ErrCmdUnknownOperator) || errors.Is(err, cutover.ErrCmdReplayed) {
			level = zap.ErrorLevel // someone is sending commands they may not
		}
		l.log.Log(level, "operator command refused", zap.String("command", verb), zap.String("operator", c.Operator), zap.Error(err))
	} else {
		l.log.Info("operator command done", zap.String("command", verb), zap.String("operator", c.Operator),
			zap.String("alarm", c.Alarm), zap.String("zone", c.Zone), zap.String("reason", c.Reason))
	}
	return l.put(append(msgs, l.enc.Result(res, now)))
}

// ack takes a consumer's acknowledgement of a drain signal from P/drain/<zone>/ack/<consumer>.
// Acks are not commands: a bad one is logged, not answered.
func (l *engineLoop) ack(rc rawCommand) error {
	parts := strings.Split(rc.topic, "/")
	if len(parts) < 4 || parts[len(parts)-2] != "ack" {
		return nil
	}
	zone, consumer := parts[len(parts)-3], parts[len(parts)-1]
	if len(rc.payload) == 0 {
		return nil // a cleared retained ack
	}
	var a cutover.Ack
	dec := json.NewDecoder(bytes.NewReader(rc.payload))
	dec.DisallowUnknownFields()
	err := dec.Decode(&a)
	switch {
	case err != nil:
		err = fmt.Errorf("%w: %v", cutover.ErrBadAck, err)
	case a.Zone != zone || a.Consumer != consumer:
		err = fmt.Errorf("%w: topic names zone %q consumer %q, payload %q %q", cutover.ErrBadAck, zone, consumer, a.Zone, a.Consumer)
	}
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
