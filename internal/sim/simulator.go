package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sunspec"
)

// deviceKind is what part of the model a device shows, told by the roles of its profile.
type deviceKind uint8

const (
	kindRack deviceKind = iota + 1
	kindUPS
	kindGas
	kindPanel
)

// simDevice is one served unit: its points and the register image the server reads.
type simDevice struct {
	name   string
	kind   deviceKind
	points []collectors.Point
	index  []int // index of each point among the points of its role (module_temp_3 → 2)
	// image is the working image: refresh writes it under model (silent: a bms_silent fault
	// holds, the gateway answers exception 11).
	image
	faults []Event            // the scenario's instrument faults on this device
	link   Fault              // a link_* fault holds: the connection's FaultProxy applies it
	frozen map[string]float64 // values held by sensor_stuck
	// cellVoltages: how many cell_voltage points the profile has; a rack's BMS that gives every
	// cell (modules × cells) reads each cell, one that gives fewer reads each module's lowest.
	cellVoltages int
	// served is what the Modbus handlers and Read see: the images as the last refresh left them,
	// copied in under mu, so that a read never waits for the model to step.
	served image

	declared []collectors.Point // a SunSpec device's points as the profile gives them (no addresses)
	chain    *sunspec.Chain     // its layout; nil for a plain device
}

// image is a device's register and bit images and whether its gateway answers.
type image struct {
	regs   map[collectors.RegisterKind][]uint16
	bits   map[collectors.RegisterKind][]bool
	silent bool
}

// ioFault says whether an event kind acts on the instruments rather than on the room.
func ioFault(kind string) bool {
	switch kind {
	case "bms_silent", "gateway_frozen", "sensor_stuck", "sensor_drift", "sensor_value", "sensor_raw", "sensor_flap":
		return true
	}
	return linkFault(kind) != FaultNone
}

// linkFault is the FaultProxy fault a link_* event kind asks for (FaultNone for any other kind).
func linkFault(kind string) FaultKind {
	switch kind {
	case "link_drop":
		return FaultDrop
	case "link_late":
		return FaultLate
	case "link_exception":
		return FaultException
	case "link_short":
		return FaultShort
	case "link_garbled":
		return FaultGarbled
	case "link_wrong_function":
		return FaultWrongFunction
	}
	return FaultNone
}

// Simulator runs a Room on a clock and serves it over Modbus TCP, one listener per connection
// of the site config, each device at its unit id.
type Simulator struct {
	clk   clock.Clock
	start time.Time
	sc    *Scenario
	// model guards the room and the devices' working images (refresh writes them): held while
	// the model steps. mu guards what is served (each device's served image and the proxies'
	// faults), and is held only to copy a refresh in: a poll never waits behind the physics
	// (at 500 racks a second's step and refresh take 35 ms, which a poll would have waited).
	model   sync.Mutex
	mu      sync.RWMutex
	room    *Room
	byConn  map[string]map[uint8]*simDevice
	proxies map[string]*FaultProxy // connection → its fault proxy, where the scenario has link faults
	devices []*simDevice
	done    chan struct{}
}

// New builds the simulator for a site and scenario; scenario time 0 is clk.Now().
func New(cfg *config.Config, sc *Scenario, clk clock.Clock) (*Simulator, error) {
	chem, err := LoadChemistry(sc.Chemistry)
	if err != nil {
		return nil, err
	}
	rm, err := LoadRoom(sc.Room)
	if err != nil {
		return nil, err
	}
	s := &Simulator{clk: clk, start: clk.Now(), sc: sc, byConn: map[string]map[uint8]*simDevice{}, proxies: map[string]*FaultProxy{}, done: make(chan struct{})}
	var racks []string
	for _, d := range cfg.Devices {
		prof := cfg.Points(d)
		if prof == nil {
			return nil, fmt.Errorf("device %s: unknown profile %q", d.Name, d.Profile)
		}
		sd := &simDevice{name: d.Name, points: prof.Points, image: image{regs: map[collectors.RegisterKind][]uint16{}, bits: map[collectors.RegisterKind][]bool{}}, frozen: map[string]float64{}}
		roles := map[sample.Role]int{}
		for _, p := range prof.Points {
			sd.index = append(sd.index, roles[p.Role])
			roles[p.Role]++
			switch p.Role {
			case sample.ModuleTemperature, sample.CellTemperature:
				sd.kind = kindRack
			case sample.UPSOnBattery, sample.UPSRuntime:
				if sd.kind == 0 {
					sd.kind = kindUPS
				}
			case sample.OffgasPPM, sample.H2PPM, sample.COPPM:
				if sd.kind == 0 {
					sd.kind = kindGas
				}
			case sample.Smoke, sample.FireAlarm, sample.SuppressionReleased, sample.Heat:
				if sd.kind == 0 {
					sd.kind = kindPanel
				}
			}
			end := int(p.Address) + int(p.Words)
			if p.Kind.IsBit() {
				if len(sd.bits[p.Kind]) < end {
					sd.bits[p.Kind] = append(sd.bits[p.Kind], make([]bool, end-len(sd.bits[p.Kind]))...)
				}
			} else if len(sd.regs[p.Kind]) < end {
				sd.regs[p.Kind] = append(sd.regs[p.Kind], make([]uint16, end-len(sd.regs[p.Kind]))...)
			}
		}
		if sd.kind == 0 {
			return nil, fmt.Errorf("device %s: profile %s has no role the simulator can model", d.Name, d.Profile)
		}
		sd.cellVoltages = roles[sample.CellVoltage]
		if prof.HasSunSpec() {
			base := 40000
			if prof.SunSpecBase >= 0 {
				base = prof.SunSpecBase
			}
			sd.declared = prof.Points
			if err := layoutSunSpec(sd, prof.Points, uint16(base)); err != nil {
				return nil, err
			}
		}
		if sd.kind == kindRack {
			racks = append(racks, d.Name)
		}
		if s.byConn[d.Connection] == nil {
			s.byConn[d.Connection] = map[uint8]*simDevice{}
		}
		s.byConn[d.Connection][uint8(d.UnitID)] = sd
		s.devices = append(s.devices, sd)
	}
	for i, e := range sc.Events {
		switch {
		case ioFault(e.Kind):
			var dev *simDevice
			for _, d := range s.devices {
				if d.name == e.Device {
					dev = d
				}
			}
			if dev == nil {
				return nil, fmt.Errorf("scenario %s: events[%d] (%s) names device %q, which is not in the site", sc.Name, i, e.Kind, e.Device)
			}
			if e.Point != "" {
				found := false
				for _, p := range dev.points {
					// gateway_frozen names a block by the points' common beginning
					found = found || p.Name == e.Point || (e.Kind == "gateway_frozen" && strings.HasPrefix(p.Name, e.Point))
				}
				if !found {
					return nil, fmt.Errorf("scenario %s: events[%d] (%s) names point %q, which device %s does not have", sc.Name, i, e.Kind, e.Point, e.Device)
				}
			}
			dev.faults = append(dev.faults, e)
		case e.Device != "":
			found := false
			for _, r := range racks {
				found = found || r == e.Device
			}
			if !found {
				return nil, fmt.Errorf("scenario %s: events[%d] (%s) names device %q, which is not a rack of this site (racks: %v)", sc.Name, i, e.Kind, e.Device, racks)
			}
		}
	}
	s.room = NewRoom(sc, chem, rm, racks)
	s.refresh()
	s.publishLocked() // nothing else holds s yet
	return s, nil
}

// Run steps the model in the scenario's increments (step, 1 s by default) to keep up with the clock, until the
// scenario's duration has passed (then Done closes) or ctx ends.
func (s *Simulator) Run(ctx context.Context) error {
	defer close(s.done)
	for {
		target := s.clk.Now().Sub(s.start)
		s.model.Lock()
		for s.room.Elapsed()+s.sc.Step <= target && s.room.Elapsed() < s.sc.Duration {
			s.room.Step(s.sc.Step)
		}
		s.refresh()
		s.publishLocked()
		finished := s.room.Elapsed() >= s.sc.Duration
		s.model.Unlock()
		if finished {
			return nil
		}
		if err := clock.Sleep(ctx, s.clk, s.sc.Step); err != nil {
			return nil
		}
	}
}

// Done closes when Run has returned.
func (s *Simulator) Done() <-chan struct{} { return s.done }

// Skip starts the scenario d earlier than New did: the first step of Run computes the physics of
// those d at once. For tests at speed 1 that need only the scenario's end (call before Run).
func (s *Simulator) Skip(d time.Duration) { s.start = s.start.Add(-d) }

// Start is scenario time 0 on the simulator's clock.
func (s *Simulator) Start() time.Time { return s.start }

// GroundTruth is a ground-truth event with its time on the clock.
type GroundTruth struct {
	At     time.Time
	Kind   TruthKind
	Device string
	Detail string
}

// Truth returns what has really happened so far.
func (s *Simulator) Truth() []GroundTruth {
	s.model.Lock()
	defer s.model.Unlock()
	var out []GroundTruth
	for _, t := range s.room.Truth() {
		out = append(out, GroundTruth{At: s.start.Add(t.At), Kind: t.Kind, Device: t.Device, Detail: t.Detail})
	}
	return out
}

// refresh re-encodes every device's working image from the model, then lays the active
// instrument faults over it. Caller holds model; publishLocked serves the result.
func (s *Simulator) refresh() {
	el := s.room.Elapsed()
	for _, d := range s.devices {
		d.silent, d.link = false, Fault{}
		cached, cachedPrefix := false, ""
		active := map[string]Event{}
		for _, f := range d.faults {
			if el < f.At || el >= f.end(s.sc.Duration) {
				if f.Kind == "sensor_stuck" {
					delete(d.frozen, f.Point)
				}
				continue
			}
			if f.Kind == "bms_silent" {
				d.silent = true
				continue
			}
			if f.Kind == "gateway_frozen" {
				if f.Point == "" {
					cached = true
				} else {
					cachedPrefix = f.Point
				}
				continue
			}
			if k := linkFault(f.Kind); k != FaultNone {
				d.link = Fault{Kind: k, Delay: f.Delay, Code: byte(f.Code)}
				continue
			}
			active[f.Point] = f
		}
		if cached {
			continue // the gateway serves the registers it read last, whatever the BMS does
		}
		for i, p := range d.points {
			if cachedPrefix != "" && strings.HasPrefix(p.Name, cachedPrefix) {
				continue // the gateway serves what it cached of this block
			}
			v, sentinel := s.value(d, p, d.index[i])
			var raw *uint64
			if f, ok := active[p.Name]; ok {
				switch f.Kind {
				case "sensor_stuck":
					if held, ok := d.frozen[p.Name]; ok {
						v = held
					} else {
						d.frozen[p.Name] = v
					}
				case "sensor_value":
					v, sentinel = f.Value, false
				case "sensor_drift":
					v += f.RatePerMin * (el - f.At).Minutes()
					if f.High != 0 && v > f.High {
						v = f.High
					}
				case "sensor_raw":
					raw = &f.Raw
				case "sensor_flap":
					v, sentinel = f.Low, false
					if int((el-f.At)/f.Period)%2 == 1 {
						v = f.High
					}
				}
			}
			if p.Kind.IsBit() {
				d.bits[p.Kind][p.Address] = v != 0
				continue
			}
			var b []byte
			if raw != nil {
				b = collectors.EncodeRaw(p, *raw)
			} else if sentinel && len(p.Invalid) > 0 {
				b = collectors.EncodeRaw(p, p.Invalid[0])
			} else {
				b = collectors.EncodeRegisters(p, v)
			}
			img := d.regs[p.Kind]
			if p.Type == collectors.Bit {
				// Several bit points share one register: set or clear only this bit.
				mask := uint16(1) << p.Bit
				if v != 0 {
					img[p.Address] |= mask
				} else {
					img[p.Address] &^= mask
				}
				continue
			}
			for w := 0; w < int(p.Words); w++ {
				img[int(p.Address)+w] = uint16(b[2*w])<<8 | uint16(b[2*w+1])
			}
		}
	}
}

// publishLocked copies every device's working image into the one it serves, and sets the link
// faults on each connection's proxy (none without link faults). Caller holds model.
func (s *Simulator) publishLocked() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		d.served.copyFrom(&d.image)
	}
	for conn, p := range s.proxies {
		for unit, d := range s.byConn[conn] {
			p.Set(unit, d.link)
		}
	}
}

// copyFrom makes img a copy of src, reusing img's slices where they have src's lengths.
func (img *image) copyFrom(src *image) {
	img.silent = src.silent
	img.regs = copyImage(img.regs, src.regs)
	img.bits = copyImage(img.bits, src.bits)
}

// copyImage copies src into dst, reusing dst's slices where they have src's length.
func copyImage[T any](dst, src map[collectors.RegisterKind][]T) map[collectors.RegisterKind][]T {
	if dst == nil {
		dst = make(map[collectors.RegisterKind][]T, len(src))
	}
	for k, v := range src {
		if len(dst[k]) != len(v) {
			dst[k] = make([]T, len(v))
		}
		copy(dst[k], v)
	}
	for k := range dst {
		if _, ok := src[k]; !ok {
			delete(dst, k)
		}
	}
	return dst
}

// value is what the model says a point reads; sentinel means the instrument has no reading.
func (s *Simulator) value(d *simDevice, p collectors.Point, idx int) (float64, bool) {
	r := s.room
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	switch d.kind {
	case kindRack:
		rk := r.byNm[d.name]
		switch p.Role {
		case sample.ModuleTemperature:
			i := idx % len(rk.ntc)
			return rk.ntc[i], rk.ntcOpen[i]
		case sample.CellTemperature:
			mx := rk.maxNTC()
			return mx, math.IsInf(mx, -1)
		case sample.CellVoltage:
			if d.cellVoltages == modulesPerRack*cellsPerModule {
				m := idx / cellsPerModule
				return rk.cells[m][idx%cellsPerModule].V + rk.offsetV[m], false
			}
			m := idx % modulesPerRack
			mn := math.Inf(1)
			for c := range rk.cells[m] {
				mn = math.Min(mn, rk.cells[m][c].V)
			}
			return mn + rk.offsetV[m], false
		case sample.StringVoltage:
			return rk.stringV(), false
		case sample.StringCurrent:
			return rk.currentA, false
		case sample.SoC:
			return rk.meanSoC() * 100, false
		case sample.BMSAlarm:
			var w float64
			if rk.maxNTC() > 60 {
				w += 1
			}
			if rk.minCellV() < 2.5 {
				w += 2
			}
			if rk.contactorOpen {
				w += 4
			}
			return w, false
		case sample.ContactorOpen:
			return b2f(rk.contactorOpen), false
		}
		if p.Name == "string_power" {
			return rk.stringV() * rk.currentA / 1000, false
		}
	case kindUPS:
		switch p.Role {
		case sample.UPSOnBattery:
			return b2f(r.upsOnBattery), false
		case sample.UPSRuntime:
			return r.upsRuntimeS(), false
		case sample.UPSLoad:
			return r.upsLoadPct, false
		case sample.UPSBatteryTemperature:
			return r.airC + 3, false
		case sample.SoC:
			return r.meanSoC() * 100, false
		}
	case kindGas:
		switch p.Role {
		case sample.OffgasPPM:
			return math.Max(0, 0.4+r.offgasPPM+r.rng.NormFloat64()*0.05), false
		case sample.H2PPM:
			return r.h2PPM, false
		case sample.COPPM:
			return r.coPPM, false
		case sample.AmbientTemperature:
			return r.airC, false
		}
	case kindPanel:
		switch p.Role {
		case sample.Smoke:
			return b2f(r.smoke), false
		case sample.Heat:
			return b2f(r.heat), false
		case sample.FireAlarm:
			return b2f(r.fireAlarm), false
		case sample.SuppressionReleased:
			return b2f(r.suppression), false
		}
	}
	return 0, false
}

func (rk *Rack) stringV() float64 {
	v := 0.0
	for m := range rk.cells {
		for c := range rk.cells[m] {
			v += rk.cells[m][c].V
		}
	}
	return v
}

func (rk *Rack) minCellV() float64 {
	mn := math.Inf(1)
	for m := range rk.cells {
		for c := range rk.cells[m] {
			mn = math.Min(mn, rk.cells[m][c].V)
		}
	}
	return mn
}

func (rk *Rack) meanSoC() float64 {
	s := 0.0
	for m := range rk.cells {
		for c := range rk.cells[m] {
			s += rk.cells[m][c].soc
		}
	}
	return s / (modulesPerRack * cellsPerModule)
}

func (r *Room) meanSoC() float64 {
	if len(r.racks) == 0 {
		return 0
	}
	s := 0.0
	for _, rk := range r.racks {
		s += rk.meanSoC()
	}
	return s / float64(len(r.racks))
}

// upsRuntimeS is the runtime left at the present load from the racks' stored energy.
func (r *Room) upsRuntimeS() float64 {
	if r.upsLoadPct <= 0 {
		return 65535
	}
	energyJ := 0.0
	for _, rk := range r.racks {
		energyJ += rk.meanSoC() * r.chem.CapacityAh * 3600 * 3.7 * modulesPerRack * cellsPerModule
	}
	return energyJ / (r.upsLoadPct / 100 * r.rm.UPSRatedKW * 1000)
}

// Server is one Modbus TCP listener of the simulator (behind a FaultProxy when the scenario has
// link faults for its devices).
type Server struct {
	srv   *modbus.ModbusServer
	proxy *FaultProxy
	Addr  string
}

// Serve starts a Modbus TCP listener for the devices of one connection. listen may use port 0
// for a free port; the address taken is in Server.Addr.
func (s *Simulator) Serve(conn, listen string) (*Server, error) {
	units := s.byConn[conn]
	if units == nil {
		return nil, fmt.Errorf("connection %q has no devices to serve", conn)
	}
	h := &handler{s: s, units: units}
	linkFaults := false
	for _, d := range units {
		for _, f := range d.faults {
			linkFaults = linkFaults || linkFault(f.Kind) != FaultNone
		}
	}
	front := listen
	if linkFaults {
		listen = "127.0.0.1:0" // the server hides behind the proxy, which takes the address asked for
	}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		addr, err := pickAddr(listen)
		if err != nil {
			return nil, err
		}
		srv, err := modbus.NewServer(&modbus.ServerConfiguration{URL: "tcp://" + addr, Timeout: 5 * time.Minute, MaxClients: 64}, h)
		if err != nil {
			return nil, fmt.Errorf("modbus server on %s: %w", addr, err)
		}
		if err := srv.Start(); err != nil {
			lastErr = err
			if hostPort(listen) != "0" {
				break
			}
			continue // the free port was taken between pick and bind: pick again
		}
		if !linkFaults {
			return &Server{srv: srv, Addr: addr}, nil
		}
		p, err := newFaultProxyOn(front, addr)
		if err != nil {
			srv.Stop()
			return nil, err
		}
		s.mu.Lock()
		s.proxies[conn] = p
		s.mu.Unlock()
		return &Server{srv: srv, proxy: p, Addr: p.Addr}, nil
	}
	return nil, fmt.Errorf("modbus server on %s: %w", listen, lastErr)
}

// Close stops the listener and drops its clients.
func (sv *Server) Close() error {
	if sv.proxy != nil {
		sv.proxy.Close()
	}
	return sv.srv.Stop()
}

func hostPort(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// pickAddr resolves port 0 to a port that is free now (simonvetter's server does not report
// the port it bound).
func pickAddr(listen string) (string, error) {
	if hostPort(listen) != "0" {
		return listen, nil
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return "", fmt.Errorf("listen %s: %w", listen, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// handler serves reads from the device images; the simulator, like Firebreak, refuses writes.
type handler struct {
	s     *Simulator
	units map[uint8]*simDevice
}

func (h *handler) device(unit uint8) (*simDevice, error) {
	d := h.units[unit]
	if d == nil {
		return nil, modbus.ErrGWTargetFailedToRespond
	}
	return d, nil
}

// readImage copies qty entries at addr from one of a unit's images (bits or registers), or says
// why it cannot: the unit is silent, or the range is past its map.
func readImage[T any](h *handler, unit uint8, addr, qty uint16, image func(*image) []T) ([]T, error) {
	d, err := h.device(unit)
	if err != nil {
		return nil, err
	}
	h.s.mu.RLock()
	defer h.s.mu.RUnlock()
	if d.served.silent {
		return nil, modbus.ErrGWTargetFailedToRespond
	}
	img := image(&d.served)
	if int(addr)+int(qty) > len(img) {
		return nil, modbus.ErrIllegalDataAddress
	}
	return append([]T(nil), img[addr:int(addr)+int(qty)]...), nil
}

func (h *handler) readBits(unit uint8, kind collectors.RegisterKind, addr, qty uint16) ([]bool, error) {
	return readImage(h, unit, addr, qty, func(img *image) []bool { return img.bits[kind] })
}

func (h *handler) readRegs(unit uint8, kind collectors.RegisterKind, addr, qty uint16) ([]uint16, error) {
	return readImage(h, unit, addr, qty, func(img *image) []uint16 { return img.regs[kind] })
}

func (h *handler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	if req.IsWrite {
		return nil, modbus.ErrIllegalFunction
	}
	return h.readBits(req.UnitId, collectors.Coil, req.Addr, req.Quantity)
}

func (h *handler) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	return h.readBits(req.UnitId, collectors.Discrete, req.Addr, req.Quantity)
}

func (h *handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		return nil, modbus.ErrIllegalFunction
	}
	return h.readRegs(req.UnitId, collectors.Holding, req.Addr, req.Quantity)
}

func (h *handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	return h.readRegs(req.UnitId, collectors.Input, req.Addr, req.Quantity)
}

// Advance steps the model by d of scenario time in the scenario's increments, without a clock:
// for recording traces as fast as the CPU allows.
func (s *Simulator) Advance(d time.Duration) {
	s.model.Lock()
	defer s.model.Unlock()
	for end := s.room.Elapsed() + d; s.room.Elapsed() < end; {
		s.room.Step(min(s.sc.Step, end-s.room.Elapsed()))
	}
	s.refresh()
	s.publishLocked()
}

// Read is a perfect poller: every point of the device, decoded from its register image by the
// collectors' own codec, stamped at.
func (s *Simulator) Read(device string, at time.Time) (sample.Batch, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var d *simDevice
	for _, x := range s.devices {
		if x.name == device {
			d = x
		}
	}
	if d == nil {
		return sample.Batch{}, fmt.Errorf("no device %q in the simulator", device)
	}
	b := sample.Batch{Device: device, At: at, Samples: make([]sample.Sample, len(d.points))}
	if d.served.silent {
		b.Err = ErrSilent
		return b, nil
	}
	for i, p := range d.points {
		smp := sample.Sample{Device: device, Point: p.Name, Role: p.Role, At: at}
		var dv collectors.Decoded
		var err error
		if p.Kind.IsBit() {
			v := 0.0
			if d.served.bits[p.Kind][p.Address] {
				v = 1
			}
			dv = collectors.Decoded{Value: v, Quality: sample.Good}
		} else {
			img := d.served.regs[p.Kind][p.Address : int(p.Address)+int(p.Words)]
			raw := make([]byte, 2*len(img))
			for w, r := range img {
				raw[2*w], raw[2*w+1] = byte(r>>8), byte(r)
			}
			dv, err = collectors.DecodeRegisters(p, raw)
		}
		if err != nil {
			return b, fmt.Errorf("device %s point %s: %w", device, p.Name, err)
		}
		smp.Value, smp.Text, smp.Quality = dv.Value, dv.Text, dv.Quality
		b.Samples[i] = smp
	}
	return b, nil
}

// ErrSilent is what the perfect poller reads from a device that a bms_silent fault holds.
var ErrSilent = errors.New("device silent (gateway: target failed to respond)")

// Devices lists the simulated devices in config order.
func (s *Simulator) Devices() []string {
	out := make([]string, len(s.devices))
	for i, d := range s.devices {
		out[i] = d.name
	}
	return out
}
