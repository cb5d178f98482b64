package wire

import "testing"

// TestTopicsParseWhatTheyBuild: every topic the builders make reads back as its kind with its
// names, and what is not docs/design.md's (another prefix, an empty level, a level too many) is refused.
func TestTopicsParseWhatTheyBuild(t *testing.T) {
	tp := Topics{P: "firebreak/site-a"}
	for _, tc := range []struct {
		topic string
		want  Topic
	}{
		{tp.Status("fb-a1"), Topic{Kind: KindStatus, Instance: "fb-a1"}},
		{tp.Alarm("rack-1.cell_t1.temp_high"), Topic{Kind: KindAlarm, Alarm: "rack-1.cell_t1.temp_high"}},
		{tp.Events(), Topic{Kind: KindEvents}},
		{tp.Risk("b3"), Topic{Kind: KindRisk, Zone: "b3"}},
		{tp.Drain("b3"), Topic{Kind: KindDrain, Zone: "b3"}},
		{tp.DrainStatus("b3"), Topic{Kind: KindDrainStatus, Zone: "b3"}},
		{tp.DrainAck("b3", "control-plane"), Topic{Kind: KindDrainAck, Zone: "b3", Consumer: "control-plane"}},
		{tp.Telemetry("ups-1"), Topic{Kind: KindTelemetry, Device: "ups-1"}},
		{tp.Availability("ups-1"), Topic{Kind: KindAvailability, Device: "ups-1"}},
		{tp.Command("fb-a1", "ack"), Topic{Kind: KindCommand, Instance: "fb-a1", Verb: "ack"}},
		{tp.CommandResult("fb-a1"), Topic{Kind: KindCommandResult, Instance: "fb-a1"}},
	} {
		got, ok := tp.Parse(tc.topic)
		if !ok || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.topic, got, ok, tc.want)
		}
	}
	for _, bad := range []string{
		"firebreak/site-b/events", "firebreak/site-a", "firebreak/site-a/", "firebreak/site-a//events",
		"firebreak/site-a/drain/b3/ack", "firebreak/site-a/drain/b3/ack/x/y", "firebreak/site-a/drain//ack/x",
		"firebreak/site-a/unknown/x", "firebreak/site-aa/events",
	} {
		if got, ok := tp.Parse(bad); ok {
			t.Errorf("Parse(%q) = %+v; want it refused", bad, got)
		}
	}
}
