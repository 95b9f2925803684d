package plugin

import "github.com/pingap-go/pingap/internal/httpx"

// Chain is the ordered plugin list of one location (server plugins first),
// composed once when a snapshot is built.
type Chain struct {
	plugins   []Plugin
	responses []ResponseHandler // responses[i] is plugins[i] as a ResponseHandler, or nil
	finishers []Finisher        // likewise for Finisher
}

// NewChain composes plugins in order.
func NewChain(plugins ...Plugin) *Chain {
	c := &Chain{plugins: plugins, responses: make([]ResponseHandler, len(plugins)), finishers: make([]Finisher, len(plugins))}
	for i, p := range plugins {
		if rh, ok := p.(ResponseHandler); ok {
			c.responses[i] = rh
		}
		if f, ok := p.(Finisher); ok {
			c.finishers[i] = f
		}
	}
	return c
}

// Len returns the number of plugins.
func (ch *Chain) Len() int {
	if ch == nil {
		return 0
	}
	return len(ch.plugins)
}

// Request runs the request phase. It returns how many plugins ran and
// whether the last of them answered the request.
func (ch *Chain) Request(c *httpx.Ctx) (ran int, handled bool) {
	if ch == nil {
		return 0, false
	}
	for i, p := range ch.plugins {
		if p.Request(c) {
			return i + 1, true
		}
	}
	return len(ch.plugins), false
}

// Response runs the response phase, in reverse order, for the first ran
// plugins.
func (ch *Chain) Response(c *httpx.Ctx, ran int) {
	if ch == nil {
		return
	}
	for i := ran - 1; i >= 0; i-- {
		if rh := ch.responses[i]; rh != nil {
			rh.Response(c)
		}
	}
}

// Finish tells the first ran plugins, in reverse order, that the request is
// over.
func (ch *Chain) Finish(c *httpx.Ctx, ran int) {
	if ch == nil {
		return
	}
	for i := ran - 1; i >= 0; i-- {
		if f := ch.finishers[i]; f != nil {
			f.Finish(c)
		}
	}
}
