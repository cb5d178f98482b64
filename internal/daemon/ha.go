package daemon

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// haWatch is the engine loop's view of its HA peer: the other instance watching the same room.
// Both poll and both publish; each watches the other's retained status (its last will says
// offline) and raises ha.<peer>.redundancy_lost when the peer is offline or has not been heard
// for ha.stale_after. Each re-publishes its own status every ha.heartbeat so that silence means
// something. The peer's drain signals, verified with its key, let this instance join an episode
// the peer opened (cutover.Planner.PeerSignal).
type haWatch struct {
	peer      string
	pub       ed25519.PublicKey
	stale     time.Duration
	heartbeat time.Duration
	version   string

	state    string    // the peer's last status ("" before any)
	bootID   string    // of the peer's last status
	heard    time.Time // when it came (this instance's clock)
	start    time.Time // silence counts from here until the first status
	lost     bool
	lastBeat time.Time
}

func newHAWatch(cfg *config.Config, version string, now time.Time) (*haWatch, error) {
	if cfg.HA.Peer == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(cfg.HA.PeerPublicKey)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ha.peer_public_key: not a base64 Ed25519 public key")
	}
	return &haWatch{peer: cfg.HA.Peer, pub: ed25519.PublicKey(k), stale: cfg.HA.StaleAfter, heartbeat: cfg.HA.Heartbeat,
		version: version, start: now, lastBeat: now}, nil
}

// peerStatusTopic is the peer's retained status topic.
func peerStatusTopic(enc *wire.Encoder, peer string) string {
	return enc.T.Status(peer)
}

// peerStatus takes a status message of the peer.
func (l *engineLoop) peerStatus(payload []byte) {
	var st wire.StatusPayload
	if len(payload) == 0 || json.Unmarshal(payload, &st) != nil || st.State == "" {
		l.log.Warn("ha: peer status not understood", zap.String("peer", l.ha.peer), zap.ByteString("payload", payload))
		return
	}
	h := l.ha
	if st.State != h.state || st.BootID != h.bootID {
		l.log.Info("ha: peer status", zap.String("peer", h.peer), zap.String("state", st.State), zap.String("boot_id", st.BootID))
	}
	h.state, h.bootID, h.heard = st.State, st.BootID, l.clk.Now()
}

// peerSignal takes a drain signal from P/drain/<zone>: one of the peer's, verified with its key
// and unexpired, tells the planner which episode the peer has open. Our own and anything that
// does not verify are ignored (the consumers judge signals for themselves).
func (l *engineLoop) peerSignal(payload []byte) {
	if len(payload) == 0 {
		return
	}
	var head struct {
		Instance string `json:"instance"`
	}
	if json.Unmarshal(payload, &head) != nil || head.Instance != l.ha.peer {
		return
	}
	s, err := cutover.Verify(payload, l.ha.pub, l.clk.Now())
	if err != nil {
		l.log.Debug("ha: peer drain signal not taken", zap.String("peer", l.ha.peer), zap.Error(err))
		return
	}
	l.pipe.PeerSignal(s)
	if own := l.pipe.Episode(s.Zone); own != "" && own != s.Episode && s.Action != cutover.Cancel {
		l.log.Warn("ha: the peer names this zone's episode differently (both opened it within moments, across an episode window boundary); consumers see two episodes",
			zap.String("zone", s.Zone), zap.String("ours", own), zap.String("peer", s.Episode))
	}
}

// haTick re-publishes our status when due and raises or clears redundancy_lost.
func (l *engineLoop) haTick(now time.Time) error {
	h := l.ha
	var msgs []wire.Message
	if now.Sub(h.lastBeat) >= h.heartbeat {
		h.lastBeat = now
		msgs = append(msgs, l.enc.Status("online", h.version, now))
	}
	since := h.heard
	if since.IsZero() {
		since = h.start
	}
	silent := l.clk.Now().Sub(since)
	lost, why := false, ""
	switch {
	case h.state == "offline":
		lost, why = true, fmt.Sprintf("HA peer %s is offline (its status says so, or its last will)", h.peer)
	case silent > h.stale:
		lost, why = true, fmt.Sprintf("HA peer %s not heard for %s (ha.stale_after %s)", h.peer, silent.Round(time.Second), h.stale)
	}
	if lost {
		l.m.peerUp.Set(0)
	} else {
		l.m.peerUp.Set(1)
	}
	if lost != h.lost {
		h.lost = lost
		if lost {
			l.log.Warn("ha: redundancy lost", zap.String("peer", h.peer), zap.String("why", why))
		} else {
			l.log.Info("ha: redundancy restored", zap.String("peer", h.peer))
		}
		out, err := l.pipe.Redundancy(h.peer, lost, why, now)
		msgs = append(msgs, out...)
		if perr := l.put(msgs); perr != nil {
			return perr
		}
		return err
	}
	return l.put(msgs)
}

// Redundancy raises (lost) or clears ha.<peer>.redundancy_lost, an alarm of the protocol kind:
// it never counts as evidence of a fire.
func (p *Pipeline) Redundancy(peer string, lost bool, text string, now time.Time) ([]wire.Message, error) {
	st := alarms.StageNormal
	if lost {
		st = alarms.StageWatch
	}
	return p.ProtocolAlarm("ha."+peer, "redundancy_lost", st, text, now)
}

// ProtocolAlarm raises, updates or (StageNormal) clears the alarm <source>.<kind> that concerns
// the daemon itself (its peer, its state_dir, its signing key): the whole ISA-18.2 lifecycle,
// its stage its priority, never evidence of a fire.
func (p *Pipeline) ProtocolAlarm(source, kind string, st alarms.Stage, text string, now time.Time) ([]wire.Message, error) {
	p.eng.Protocol(source, kind, "", st, text, now)
	return p.flush()
}

// PeerSignal passes a verified signal of the HA peer to the planner.
func (p *Pipeline) PeerSignal(s cutover.Signal) { p.plan.PeerSignal(s) }

// Episode is the zone's open episode ("" for none).
func (p *Pipeline) Episode(zone string) string { return p.plan.Episode(zone) }

// haSubscriptions are the HA peer's status and the drain signals (none without a peer). Their
// handlers only hand over, like the others.
func haSubscriptions(cfg *config.Config, enc *wire.Encoder, in *inbox) []mqttx.Subscription {
	if cfg.HA.Peer == "" {
		return nil
	}
	return []mqttx.Subscription{
		{Topic: peerStatusTopic(enc, cfg.HA.Peer), QoS: 1, Handle: func(topic string, payload []byte) {
			in.protocolMsg(rawCommand{topic: topic, payload: payload, peerStatus: true})
		}},
		{Topic: enc.T.Drain(wire.Any), QoS: 1, Handle: func(topic string, payload []byte) {
			// Only the peer's signals are protocol; our own come back here too, and anyone who
			// may publish on the topic could flood it.
			var s struct {
				Instance string `json:"instance"`
			}
			if len(payload) > maxPeerSignal || json.Unmarshal(payload, &s) != nil || s.Instance != cfg.HA.Peer {
				return
			}
			in.protocolMsg(rawCommand{topic: topic, payload: payload, peerSignal: true})
		}},
	}
}

// maxPeerSignal bounds a signal of the HA peer: every target of the largest zone (config's
// limits) fits in it many times over.
const maxPeerSignal = 512 << 10
