//go:build !unix

package certs

import "os"

// tryLock: no inter-process lock here; orders are not coordinated.
func tryLock(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) {}
