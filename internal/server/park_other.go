//go:build !linux

package server

import (
	"errors"
	"time"
)

// parkState is a connection's parking state: without epoll only the
// common part (unused).
type parkState struct {
	parkCommon
}

// poller: no epoll set outside Linux; idle connections park on a goroutine.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("server: no epoll on this system") }

func (c *conn) releaseSlot() {}

func (p *poller) close() {}

func (c *conn) parkEpoll(time.Time) bool { return false }

// canSendRead: without epoll parking responses are flushed the ordinary
// way.
func (c *conn) canSendRead() bool { return false }

// pendingInput is never asked without sendRead.
func (c *conn) pendingInput() bool { return false }
