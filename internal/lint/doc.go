// Package lint holds checks over the project's own source that the compiler cannot make: that
// the vocabulary (roles, detectors, topics) is spelled once, where it is defined. It has no code
// of its own; its tests run with `make test`.
package lint
