package alarms

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The zone's one alarm for uniform warming (RoomWarm, detectors.go): an HVAC failure or a heavy discharge warms
// every rack together, and the temperature alarms of sensors that only follow the room (none of
// them stands out from its rack's peers: staging's uniform source) are one signal, not one per
// sensor. While it holds, they are suppressed by design (still evidence, still on their retained
// topics); a sensor that stands out from its rack still alarms on its own.
// roomWarmth raises, updates or clears each zone's room_warm alarm from the temperature
// conditions whose source is the zone's uniform warming. Its id is "<zone>.room_warm"; its stage
// is theirs at the highest, its value their median. Like the drain protocol's alarms it goes
// straight into the book: the conditions it stands for are the evidence, it is what the operator
// reads.
func (e *Engine) roomWarmth(now time.Time) {
	for _, zone := range e.zoneNames {
		src := "uniform:" + zone
		var vals []float64
		racks := map[string]bool{}
		st := StageNormal
		for _, c := range e.conds {
			if c.zone == zone && c.source == src {
				vals = append(vals, c.value)
				racks[c.device] = true
				st = max(st, c.stage)
			}
		}
		id := zone + "." + string(RoomWarm)
		if st == StageNormal {
			e.book.own(id, raise{}, now)
			continue
		}
		names := make([]string, 0, len(racks))
		for r := range racks {
			names = append(names, r)
		}
		sort.Strings(names)
		med := median(vals)
		e.book.own(id, raise{device: zone, zone: zone, detector: string(RoomWarm), stage: st, value: round3(med), unit: "°C",
			text: fmt.Sprintf("the room is warming: %d temperatures of %d racks (%s) follow it together, median %.1f °C; no sensor stands out",
				len(vals), len(names), strings.Join(names, ", "), med)}, now)
	}
}
