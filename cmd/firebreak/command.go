package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/secrets"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// cmdKeygen writes a new Ed25519 private key (PEM PKCS#8, mode 0600) and prints its public half,
// for an operator (commands.operators) or a daemon's drain signing key.
func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", stderr)
	out := fs.String("out", "", "where to write the private key (must not exist)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("keygen: -out is required")
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pemBytes, err := cutover.MarshalKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return fmt.Errorf("keygen: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(pub))
	return nil
}

// cmdCommand signs an operator command. Without -broker it prints the topic and the payload;
// with it, it publishes the command and waits for the daemon's result, printing it and failing
// if the command was refused.
func cmdCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("command", stderr)
	keyFile := fs.String("key", "", "the operator's Ed25519 private key (PEM or base64 seed)")
	operator := fs.String("operator", "", "the operator's name, as in commands.operators")
	instance := fs.String("instance", "", "the daemon's instance")
	prefix := fs.String("prefix", "", "topic prefix and site, e.g. firebreak/pangyo-a")
	verb := fs.String("command", "", "ack, shelve, unshelve, out_of_service, return_to_service, drain, cancel")
	alarm := fs.String("alarm", "", "alarm id (alarm commands)")
	zone := fs.String("zone", "", "zone (drain, cancel)")
	action := fs.String("action", "", "drain: prepare, drain (default) or evacuate")
	duration := fs.String("duration", "", "shelve: how long, e.g. 2h")
	reason := fs.String("reason", "", "why, for the record")
	broker := fs.String("broker", "", "publish to this broker and wait for the result (tcp://host:port)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the result")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for name, v := range map[string]string{"key": *keyFile, "operator": *operator, "instance": *instance, "prefix": *prefix, "command": *verb} {
		if v == "" {
			return usagef("command: -%s is required", name)
		}
	}
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	c := cutover.Command{V: 1, Command: *verb, Instance: *instance, Alarm: *alarm, Zone: *zone, Action: cutover.Action(*action),
		Duration: *duration, Reason: *reason, Operator: *operator, TS: time.Now().UTC(), Nonce: hex.EncodeToString(nonce)}
	if err := c.Check(); err != nil {
		// What the daemon would refuse is refused here, unsigned and unsent.
		return usagef("command: %v (flags: -alarm, -zone, -action, -duration)", err)
	}
	key, err := secrets.SigningKey(*keyFile)
	if err != nil {
		return err
	}
	if err := cutover.SignCommand(&c, key); err != nil {
		return err
	}
	payload, _ := json.Marshal(c)
	topics := wire.Topics{P: *prefix}
	topic := topics.Command(*instance, *verb)
	if *broker == "" {
		fmt.Fprintln(stdout, topic)
		fmt.Fprintln(stdout, string(payload))
		return nil
	}
	results := make(chan []byte, 16)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker(*broker).SetClientID("firebreak-command-" + c.Nonce).SetOrderMatters(false))
	if tok := cl.Connect(); !tok.WaitTimeout(*wait) || tok.Error() != nil {
		return fmt.Errorf("command: connect %s: %v", *broker, tok.Error())
	}
	defer cl.Disconnect(100)
	resTopic := topics.CommandResult(*instance)
	if tok := cl.Subscribe(resTopic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case results <- m.Payload():
		default:
		}
	}); !tok.WaitTimeout(*wait) || tok.Error() != nil {
		return fmt.Errorf("command: subscribe %s: %v", resTopic, tok.Error())
	}
	if tok := cl.Publish(topic, 1, false, payload); !tok.WaitTimeout(*wait) || tok.Error() != nil {
		return fmt.Errorf("command: publish %s: %v", topic, tok.Error())
	}
	timer := time.NewTimer(*wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("command: no result on %s within %s (is the daemon running, and is %q its instance?)", resTopic, *wait, *instance)
		case raw := <-results:
			var res struct {
				Nonce string `json:"nonce"`
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			if json.Unmarshal(raw, &res) != nil || res.Nonce != c.Nonce {
				continue // someone else's result
			}
			fmt.Fprintln(stdout, string(raw))
			if !res.OK {
				return fmt.Errorf("command refused: %s", res.Error)
			}
			return nil
		}
	}
}
