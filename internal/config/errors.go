package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is one configuration problem, located by file, section and key so
// that an operator can find it: `FILE: [section] key: message`.
//
// Section is the TOML table name as written in the file ("basic",
// "upstreams.backend", "plugins.api_keys"); Key is the key inside it. Either
// may be empty when the problem is not about one key (a missing file, a
// syntax error before any table, a section-wide rule).
type Error struct {
	File    string
	Section string
	Key     string
	Msg     string
}

// NewError returns an Error. The engine uses it to report plugin option
// problems (section "plugins.NAME") in the same list as Validate's.
func NewError(file, section, key, msg string) *Error {
	return &Error{File: file, Section: section, Key: key, Msg: msg}
}

// Error formats the problem as `FILE: [section] key: message`, leaving out
// the parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Section != "" {
		b.WriteByte('[')
		b.WriteString(e.Section)
		b.WriteString("] ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of configuration problems. Validate, Load and Parse
// return every problem they find at once as an Errors value (sorted), so
// `pingap -t` and the admin API can show them all. Use errors.As to get it
// back from a wrapped error.
type Errors []*Error

// Error returns one problem per line, in the list's order.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Add appends a problem.
func (es *Errors) Add(file, section, key, msg string) {
	*es = append(*es, NewError(file, section, key, msg))
}

// Addf appends a problem with a formatted message.
func (es *Errors) Addf(file, section, key, format string, args ...any) {
	*es = append(*es, NewError(file, section, key, fmt.Sprintf(format, args...)))
}

// Append adds err to the list: an Errors or *Error (also wrapped) keeps its
// entries, anything else becomes one entry located at file and section.
// Entries with an empty File or Section get file and section, so a plugin
// builder's error naming only a key ends up fully located.
func (es *Errors) Append(file, section string, err error) {
	if err == nil {
		return
	}
	var list Errors
	var one *Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = Errors{one}
	default:
		list = Errors{NewError(file, section, "", err.Error())}
	}
	for _, e := range list {
		c := *e
		if c.File == "" {
			c.File = file
		}
		if c.Section == "" {
			c.Section = section
		}
		*es = append(*es, &c)
	}
}

// Sort orders the list by file, section, key and message, so the output is
// the same on every run.
func (es Errors) Sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Section, b.Section),
			cmp.Compare(a.Key, b.Key),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
}

// Err returns the sorted list as an error, or nil when it is empty (avoiding
// a non-nil error interface holding an empty list).
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	es.Sort()
	return es
}
