// Package spb is the Sparkplug B payload: sparkplug_b.proto (its origin and licence are noted
// there) compiled by protoc-gen-go. The generated file is committed; to make it again, with
// protoc 3.21.12 (Debian's protobuf-compiler) and protoc-gen-go on PATH
// (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12):
//
//	go generate ./internal/sparkplug/spb/
package spb

//go:generate protoc --go_out=. --go_opt=paths=source_relative sparkplug_b.proto
