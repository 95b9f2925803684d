package httpx

import (
	"fmt"
	"strconv"
	"strings"
)

// Template is a header value with embedded variables ("$scheme://$host",
// "${remote_addr}"), compiled once at config load. The variables are the
// contract's: $remote_addr, $remote_port, $host, $scheme, $request_uri, $uri,
// $request_id, $server_addr, $hostname and $http_NAME (a request header,
// dashes written as underscores).
type Template struct {
	raw   string
	parts []tmplPart
	// literal is set when the template has no variables.
	literal bool
}

type varKind uint8

const (
	varLiteral varKind = iota
	varRemoteAddr
	varRemotePort
	varHost
	varScheme
	varRequestURI
	varURI
	varRequestID
	varServerAddr
	varHostname
	varHTTP
)

type tmplPart struct {
	kind varKind
	text string // literal text, the header name for $http_, or the hostname
}

// CompileTemplate parses s. hostname is the value of $hostname. An unknown
// variable is an error.
func CompileTemplate(s, hostname string) (*Template, error) {
	t := &Template{raw: s}
	lit := strings.Builder{}
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tmplPart{kind: varLiteral, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 >= len(s) {
			lit.WriteByte(s[i])
			i++
			continue
		}
		var name string
		j := i + 1
		if s[j] == '{' {
			end := strings.IndexByte(s[j:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ${ in %q", s)
			}
			name = s[j+1 : j+end]
			j += end + 1
		} else {
			k := j
			for k < len(s) && isVarByte(s[k]) {
				k++
			}
			name = s[j:k]
			j = k
		}
		if name == "" {
			lit.WriteByte('$')
			i++
			continue
		}
		p, err := varPart(name, hostname)
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, s)
		}
		flush()
		t.parts = append(t.parts, p)
		i = j
	}
	flush()
	t.literal = len(t.parts) == 0 || (len(t.parts) == 1 && t.parts[0].kind == varLiteral)
	return t, nil
}

func isVarByte(b byte) bool {
	return b == '_' || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9')
}

func varPart(name, hostname string) (tmplPart, error) {
	switch name {
	case "remote_addr":
		return tmplPart{kind: varRemoteAddr}, nil
	case "remote_port":
		return tmplPart{kind: varRemotePort}, nil
	case "host":
		return tmplPart{kind: varHost}, nil
	case "scheme":
		return tmplPart{kind: varScheme}, nil
	case "request_uri":
		return tmplPart{kind: varRequestURI}, nil
	case "uri":
		return tmplPart{kind: varURI}, nil
	case "request_id":
		return tmplPart{kind: varRequestID}, nil
	case "server_addr":
		return tmplPart{kind: varServerAddr}, nil
	case "hostname":
		return tmplPart{kind: varHostname, text: hostname}, nil
	}
	if h, ok := strings.CutPrefix(name, "http_"); ok && h != "" {
		return tmplPart{kind: varHTTP, text: strings.ReplaceAll(h, "_", "-")}, nil
	}
	return tmplPart{}, fmt.Errorf("unknown variable $%s", name)
}

// Raw returns the template source.
func (t *Template) Raw() string { return t.raw }

// IsLiteral reports whether the template has no variables.
func (t *Template) IsLiteral() bool { return t.literal }

// Append expands the template for c onto dst.
func (t *Template) Append(dst []byte, c *Ctx) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case varLiteral, varHostname:
			dst = append(dst, p.text...)
		case varRemoteAddr:
			if c.ClientIP.IsValid() {
				dst = c.ClientIP.AppendTo(dst)
			} else if c.Conn.RemoteAddr.IsValid() {
				dst = c.Conn.RemoteAddr.Addr().AppendTo(dst)
			}
		case varRemotePort:
			if c.Conn.RemoteAddr.IsValid() {
				dst = strconv.AppendUint(dst, uint64(c.Conn.RemoteAddr.Port()), 10)
			}
		case varHost:
			dst = AppendLowerHost(dst, c.Req.Host)
		case varScheme:
			dst = append(dst, c.Scheme...)
		case varRequestURI:
			dst = append(dst, c.Req.RequestURI...)
		case varURI:
			dst = append(dst, c.Req.Path...)
		case varRequestID:
			dst = append(dst, c.RequestID...)
		case varServerAddr:
			if c.Conn.LocalAddr.IsValid() {
				dst = c.Conn.LocalAddr.AppendTo(dst)
			}
		case varHTTP:
			dst = append(dst, c.Req.Header.Get(p.text)...)
		}
	}
	return dst
}

// String expands the template for c. A literal template costs nothing.
func (t *Template) String(c *Ctx) string {
	if t.literal {
		if len(t.parts) == 0 {
			return ""
		}
		return t.parts[0].text
	}
	if len(t.parts) == 1 {
		switch t.parts[0].kind {
		case varRequestURI:
			return c.Req.RequestURI
		case varURI:
			return c.Req.Path
		case varRequestID:
			return c.RequestID
		case varScheme:
			return c.Scheme
		case varHTTP:
			return c.Req.Header.Get(t.parts[0].text)
		}
	}
	return string(t.Append(nil, c))
}

// HostOnly returns host without a port (IPv6 brackets kept) as given.
func HostOnly(host string) string {
	if host == "" {
		return host
	}
	if host[0] == '[' {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[:i+1]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		return host[:i]
	}
	return host
}

// AppendLowerHost appends host without its port, lower-cased.
func AppendLowerHost(dst []byte, host string) []byte {
	h := HostOnly(host)
	for i := 0; i < len(h); i++ {
		b := h[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}

// LowerHost returns host without its port, lower-cased; it allocates only
// when the host has upper-case letters.
func LowerHost(host string) string {
	h := HostOnly(host)
	for i := 0; i < len(h); i++ {
		if 'A' <= h[i] && h[i] <= 'Z' {
			return string(AppendLowerHost(make([]byte, 0, len(h)), h))
		}
	}
	return h
}
