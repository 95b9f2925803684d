package config

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Item keys for configs stored one section per entry (etcd): "basic",
// "acme", "tracing", or KIND/NAME with KIND one of upstreams, locations,
// servers, plugins, certificates ("upstreams/backend"). The entry's body is
// the TOML of that one section without its [header], written as a
// standalone document (sub-tables such as headers_set are written as
// [headers_set], relative to the item).

// ParseItems builds a config from item bodies keyed as above: each body is
// decoded strictly, then defaults are applied and the whole is validated,
// as Parse does. Problems name the entry as their file:
// source + "/" + key (e.g. "etcd://127.0.0.1:2379/pingap/upstreams/a").
// cfg.Source is set to source.
func ParseItems(items map[string][]byte, source string) (*Config, error) {
	var errs Errors
	docs := make([]*decoded, 0, len(items))
	for _, key := range sortedKeys(items) {
		file := strings.TrimSuffix(source, "/") + "/" + key
		d, derrs := decodeItem(key, items[key], file)
		errs = append(errs, derrs...)
		docs = append(docs, d)
	}
	return finish(docs, errs, true, source)
}

// decodeItem decodes one entry.
func decodeItem(key string, body []byte, file string) (d *decoded, errs Errors) {
	kind, name, hasName := strings.Cut(key, "/")
	switch {
	case slices.Contains(singleSections, key):
	case hasName && slices.Contains(itemSections, kind) && name != "" && !strings.Contains(name, "/"):
	default:
		return &decoded{file: file, broken: true}, Errors{NewError(file, "", "", fmt.Sprintf("unknown entry %q (want basic, acme, tracing or KIND/NAME with KIND one of %s)",
			key, strings.Join(itemSections, ", ")))}
	}
	d = &decoded{file: file}
	defer func() {
		if r := recover(); r != nil {
			d.broken = true
			errs = append(errs, NewError(file, "", "", fmt.Sprintf("cannot decode: %v", r)))
		}
	}()
	var keys map[string]toml.Primitive
	md, err := toml.Decode(string(body), &keys)
	if err != nil {
		// The body's keys are relative to the item: LastKey is the key.
		e := syntaxError(file, err)
		if e.Section != "" {
			e.Key = ""
		}
		e.Section = sectionOf(kind, name, hasName)
		return &decoded{file: file, broken: true}, Errors{e}
	}
	if keys == nil {
		keys = map[string]toml.Primitive{}
	}
	dec := &decoder{md: &md, file: file}
	sec := sectionOf(kind, name, hasName)
	switch kind {
	case "basic":
		dec.fields(keys, sec, nil, reflect.ValueOf(&d.cfg.Basic).Elem())
		_, d.accessLogSet = keys["access_log"]
		d.singles = append(d.singles, kind)
	case "acme":
		dec.fields(keys, sec, nil, reflect.ValueOf(&d.cfg.ACME).Elem())
		d.singles = append(d.singles, kind)
	case "tracing":
		dec.fields(keys, sec, nil, reflect.ValueOf(&d.cfg.Tracing).Elem())
		_, d.sampleRatioSet = keys["sample_ratio"]
		d.singles = append(d.singles, kind)
	case "upstreams":
		d.cfg.Upstreams = map[string]Upstream{name: decodeOne[Upstream](dec, keys, sec)}
	case "locations":
		d.cfg.Locations = map[string]Location{name: decodeOne[Location](dec, keys, sec)}
	case "servers":
		d.cfg.Servers = map[string]Server{name: decodeOne[Server](dec, keys, sec)}
	case "certificates":
		d.cfg.Certificates = map[string]Certificate{name: decodeOne[Certificate](dec, keys, sec)}
	case "plugins":
		d.cfg.Plugins = map[string]Plugin{name: dec.plugin(keys, sec)}
	}
	return d, dec.errs
}

func sectionOf(kind, name string, hasName bool) string {
	if !hasName {
		return kind
	}
	return Section(kind, name)
}

func decodeOne[T any](d *decoder, keys map[string]toml.Primitive, sec string) T {
	var v T
	d.fields(keys, sec, nil, reflect.ValueOf(&v).Elem())
	return v
}

// EncodeItems writes c as item bodies keyed as ParseItems reads them
// ("basic", "acme", "tracing", "upstreams/NAME", ...): ParseItems of the
// result gives back an equal config (apart from Source).
func EncodeItems(c *Config) (map[string][]byte, error) {
	out := make(map[string][]byte)
	var firstErr error
	put := func(key string, v any) {
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(v); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("encode %s: %w", key, err)
		}
		out[key] = buf.Bytes()
	}
	put("basic", c.Basic)
	put("acme", c.ACME)
	put("tracing", c.Tracing)
	for name, u := range c.Upstreams {
		put("upstreams/"+name, u)
	}
	for name, l := range c.Locations {
		put("locations/"+name, l)
	}
	for name, s := range c.Servers {
		put("servers/"+name, s)
	}
	for name, ct := range c.Certificates {
		put("certificates/"+name, ct)
	}
	for name, p := range c.Plugins {
		if _, ok := p.Options["category"]; ok && firstErr == nil {
			firstErr = fmt.Errorf("plugins/%s: option %q clashes with the category key", name, "category")
		}
		m := make(map[string]any, len(p.Options)+1)
		maps.Copy(m, p.Options)
		m["category"] = p.Category
		put("plugins/"+name, m)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}
