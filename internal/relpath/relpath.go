// Package relpath resolves the paths a config file names: relative ones are relative to the
// file, not to wherever the daemon was started, so a config and what it names move together.
package relpath

import "path/filepath"

// Resolve returns path relative to the directory of configFile; an absolute path, an empty one,
// or any path when there is no config file (an embedded default) is returned as it is.
func Resolve(configFile, path string) string {
	if path == "" || filepath.IsAbs(path) || configFile == "" {
		return path
	}
	return filepath.Join(filepath.Dir(configFile), path)
}
