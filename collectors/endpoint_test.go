package collectors

import "testing"

func TestParseEndpoint(t *testing.T) {
	t.Parallel()
	good := map[string]Endpoint{
		"tcp://10.0.0.5:502":                    {Scheme: "tcp", Addr: "10.0.0.5:502"},
		"rtuovertcp://gw:4001":                  {Scheme: "rtuovertcp", Addr: "gw:4001"},
		"rtu:///dev/ttyUSB0?baud=9600&parity=N": {Scheme: "rtu", Addr: "/dev/ttyUSB0", Baud: 9600, Parity: "N"},
	}
	for raw, want := range good {
		got, err := ParseEndpoint(raw)
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v", raw, got, err)
		}
	}
	for _, bad := range []string{"udp://x:1", "tcp://x", "tcp://:502", "rtu://", "rtu:///dev/x?baud=7", "tcp://h:99999"} {
		if _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
