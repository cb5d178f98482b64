package daemon

import (
	"errors"
	"strings"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// command verifies and performs one operator command, and always answers on
// P/cmd/result/<instance>: done, or refused with the reason (then nothing changed). Only a failure
// to write the outbox is returned: that is the daemon's failure, not the command's.
func (l *engineLoop) command(rc rawCommand) error {
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
