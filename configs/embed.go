// Package configs ships the example site, the built-in device profiles and the simulator
// scenarios, embedded so that `firebreak demo` and the tests run from a bare checkout.
package configs

import "embed"

// FS holds profiles/, scenarios/, sites/, grafana/ (dashboards), and the simulator's presets:
// chemistry/ (cells) and rooms/.
//
//go:embed profiles/*.yaml scenarios/*.yaml sites/*.yaml chemistry/*.yaml rooms/*.yaml grafana/*.json
var FS embed.FS
