package collectors

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// Endpoint is a parsed connection URL.
type Endpoint struct {
	Scheme string // tcp | rtu | rtuovertcp
	Addr   string // host:port, or the serial device path
	Baud   int
	Parity string // N, E, O
}

// ParseEndpoint parses tcp://host:port, rtuovertcp://host:port and rtu:///dev/ttyX?baud=…&parity=….
func ParseEndpoint(raw string) (Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("is not a URL: %v", err)
	}
	switch u.Scheme {
	case "tcp", "rtuovertcp":
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" {
			return Endpoint{}, fmt.Errorf("must be %s://host:port", u.Scheme)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Endpoint{}, fmt.Errorf("port must be 1..65535")
		}
		return Endpoint{Scheme: u.Scheme, Addr: u.Host}, nil
	case "rtu":
		if u.Path == "" {
			return Endpoint{}, fmt.Errorf("must be rtu:///dev/ttyX?baud=19200&parity=E")
		}
		e := Endpoint{Scheme: "rtu", Addr: u.Path, Baud: 19200, Parity: "E"}
		q := u.Query()
		if b := q.Get("baud"); b != "" {
			n, err := strconv.Atoi(b)
			if err != nil || n < 1200 || n > 921600 {
				return Endpoint{}, fmt.Errorf("baud must be 1200..921600")
			}
			e.Baud = n
		}
		if p := q.Get("parity"); p != "" {
			if p != "N" && p != "E" && p != "O" {
				return Endpoint{}, fmt.Errorf("parity must be N, E or O")
			}
			e.Parity = p
		}
		return e, nil
	}
	return Endpoint{}, fmt.Errorf("scheme must be tcp, rtu or rtuovertcp")
}
