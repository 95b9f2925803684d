//go:build !linux

package memtrim

func trim() (Result, error) { return Result{}, ErrUnsupported }
