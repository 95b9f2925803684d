// Package httpx holds the request/response model every part of the proxy
// shares (servers, router, plugins, the proxy handler, upstream clients) and
// the HTTP/1.1 wire codec. It is a leaf: it imports only the standard library.
//
// The model is designed for the hot path: a Header is an ordered slice of
// fields reused across the requests of one connection, names keep the case
// they arrived with, and lookups are case-insensitive linear scans (a request
// carries a dozen fields; a scan beats a map and allocates nothing).
package httpx

// Field is one header field.
type Field struct {
	Name  string
	Value string
}

// Header is an ordered multiset of header fields.
type Header struct {
	fields []Field
}

// Reset empties the header, keeping its capacity.
func (h *Header) Reset() {
	clear(h.fields)
	h.fields = h.fields[:0]
}

// Len returns the number of fields.
func (h *Header) Len() int { return len(h.fields) }

// Fields returns the fields in order. The slice is owned by the header.
func (h *Header) Fields() []Field { return h.fields }

// Get returns the value of the first field named name, or "".
func (h *Header) Get(name string) string {
	for i := range h.fields {
		if EqualFold(h.fields[i].Name, name) {
			return h.fields[i].Value
		}
	}
	return ""
}

// Lookup is Get that also reports whether the field exists.
func (h *Header) Lookup(name string) (string, bool) {
	for i := range h.fields {
		if EqualFold(h.fields[i].Name, name) {
			return h.fields[i].Value, true
		}
	}
	return "", false
}

// Has reports whether a field named name exists.
func (h *Header) Has(name string) bool {
	_, ok := h.Lookup(name)
	return ok
}

// Count returns how many fields are named name.
func (h *Header) Count(name string) int {
	n := 0
	for i := range h.fields {
		if EqualFold(h.fields[i].Name, name) {
			n++
		}
	}
	return n
}

// Values calls fn for each value of the fields named name, in order, until fn
// returns false.
func (h *Header) Values(name string, fn func(v string) bool) {
	for i := range h.fields {
		if EqualFold(h.fields[i].Name, name) {
			if !fn(h.fields[i].Value) {
				return
			}
		}
	}
}

// Add appends a field.
func (h *Header) Add(name, value string) {
	h.fields = append(h.fields, Field{Name: name, Value: value})
}

// Set replaces every field named name by one field with value (at the
// position of the first one, or appended).
func (h *Header) Set(name, value string) {
	for i := range h.fields {
		if EqualFold(h.fields[i].Name, name) {
			h.fields[i].Value = value
			h.delFrom(name, i+1)
			return
		}
	}
	h.fields = append(h.fields, Field{Name: name, Value: value})
}

// Del removes every field named name.
func (h *Header) Del(name string) { h.delFrom(name, 0) }

func (h *Header) delFrom(name string, start int) {
	j := start
	for i := start; i < len(h.fields); i++ {
		if EqualFold(h.fields[i].Name, name) {
			continue
		}
		h.fields[j] = h.fields[i]
		j++
	}
	clear(h.fields[j:])
	h.fields = h.fields[:j]
}

// DelFunc removes every field for which drop returns true.
func (h *Header) DelFunc(drop func(f *Field) bool) {
	j := 0
	for i := range h.fields {
		if drop(&h.fields[i]) {
			continue
		}
		h.fields[j] = h.fields[i]
		j++
	}
	clear(h.fields[j:])
	h.fields = h.fields[:j]
}

// CopyFrom replaces h's fields with a copy of src's.
func (h *Header) CopyFrom(src *Header) {
	h.fields = append(h.fields[:0], src.fields...)
}

// Clone returns an independent copy.
func (h *Header) Clone() Header {
	return Header{fields: append([]Field(nil), h.fields...)}
}

// EqualFold reports whether ASCII strings a and b are equal ignoring case.
// Header names are ASCII tokens, so this is cheaper than strings.EqualFold.
func EqualFold(a, b string) bool { return wireEqualFold(a, b) }

// HasToken reports whether a comma-separated header value list (such as
// Connection or Transfer-Encoding) contains token, ignoring case and spaces.
func HasToken(v, token string) bool {
	for len(v) > 0 {
		var part string
		if i := indexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, ""
		}
		if EqualFold(trimOWS(part), token) {
			return true
		}
	}
	return false
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
