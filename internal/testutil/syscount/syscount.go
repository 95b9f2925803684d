// Package syscount reads the kernel's count of this process's read system
// calls, for tests that pin an I/O budget by counting rather than timing.
package syscount

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Reads returns the read system calls this process made so far (Linux:
// /proc/self/io syscr). The count includes reaped children: a test that
// runs its peer in a child process reads it before the child exits.
func Reads() (int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("syscr: ")); ok {
			return strconv.ParseInt(string(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no syscr in /proc/self/io")
}

// Peer runs the calling test's peer (a backend or a client) in a child
// process, so that the read system calls of this process are the code
// under test's alone: the test binary re-runs itself with only the given
// test selected and env=value set; in the child the test sees the
// variable, plays the peer, prints one line and calls WaitForParent.
// Peer returns that line. The child is told to exit (its stdin closes)
// and waited for when the test ends; count before that (a reaped child's
// reads are added to its parent's count).
func Peer(t testing.TB, test, env, value string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env+"="+value)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("peer %s: %v", test, err)
	}
	return strings.TrimSuffix(line, "\n")
}

// WaitForParent is the end of a peer (in the child): it returns when the
// parent test is done with it (its stdin closes), then exits.
func WaitForParent() {
	var b [1]byte
	os.Stdin.Read(b[:])
	os.Exit(0)
}
