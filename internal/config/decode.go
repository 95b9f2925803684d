package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads the configuration at path — one TOML file, or a folder whose
// *.toml files (not sub-folders, not names starting with ".") are merged —
// then applies defaults and validates it. Every problem found is returned at
// once as an Errors value. cfg.Source is set to path.
//
// Folder merge rules: every [upstreams.NAME], [locations.NAME],
// [servers.NAME], [plugins.NAME] and [certificates.NAME] item lives in
// exactly one file (a name defined in two files is an error naming both);
// [basic], [acme] and [tracing] may each appear in one file only.
func Load(path string) (*Config, error) {
	if path == "" {
		return nil, Errors{NewError("", "", "", "no config path given")}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, Errors{NewError(path, "", "", cleanOSError(err))}
	}
	var files []string
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, Errors{NewError(path, "", "", cleanOSError(err))}
		}
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".toml") {
				continue
			}
			files = append(files, filepath.Join(path, n))
		}
		if len(files) == 0 {
			return nil, Errors{NewError(path, "", "", "folder has no *.toml files")}
		}
	} else {
		files = []string{path}
	}

	var errs Errors
	docs := make([]*decoded, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs.Add(f, "", "", cleanOSError(err))
			docs = append(docs, &decoded{file: f, broken: true})
			continue
		}
		d, derrs := decodeFile(data, f)
		errs = append(errs, derrs...)
		docs = append(docs, d)
	}
	return finish(docs, errs, st.IsDir(), path)
}

// finish merges decoded documents, applies defaults and validates. When
// decoding found problems, validation still runs (so `pingap -t` shows
// every problem at once) unless a document could not be read at all, and
// its findings on a key or section that already has a decode error are
// dropped (a value that failed to decode would only be reported again as
// missing).
func finish(docs []*decoded, decodeErrs Errors, folder bool, source string) (*Config, error) {
	for _, d := range docs {
		if d.broken {
			return nil, decodeErrs.Err()
		}
	}
	c, errs := merge(docs, folder)
	if len(errs) > 0 {
		return nil, append(decodeErrs, errs...).Err()
	}
	c.Source = source
	ApplyDefaults(c)
	verr := Validate(c)
	if len(decodeErrs) == 0 {
		// On validation errors the decoded config comes back too, so that
		// `pingap -t` can also report what only the engine checks (plugin
		// options). It must not be run.
		return c, verr
	}
	all := decodeErrs
	if list, ok := verr.(Errors); ok {
		for _, e := range list {
			if !coveredBy(e, decodeErrs) {
				all = append(all, e)
			}
		}
	}
	return c, all.Err()
}

// coveredBy reports whether a validation error is about a key (or a
// section) that failed to decode.
func coveredBy(e *Error, decodeErrs Errors) bool {
	for _, d := range decodeErrs {
		if d.File == e.File && d.Section == e.Section && (d.Key == "" || d.Key == e.Key) {
			return true
		}
	}
	return false
}

// Parse is Load for one in-memory TOML document called name (the admin API's
// PUT body, an etcd value set): decode strictly, apply defaults, validate.
// cfg.Source is set to name.
func Parse(data []byte, name string) (*Config, error) {
	d, errs := decodeFile(data, name)
	return finish([]*decoded{d}, errs, false, name)
}

// cleanOSError drops the path from an *os.PathError (the Error already names
// the file).
func cleanOSError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// decoded is one file's content before merging.
type decoded struct {
	file string
	cfg  Config
	// singles lists the single sections ("basic", "acme", "tracing") the
	// file defines.
	singles []string
	// broken is set when the file could not be read or parsed at all.
	broken bool
	// accessLogSet and sampleRatioSet record whether the file wrote
	// basic.access_log and tracing.sample_ratio: their defaults (true, 1.0)
	// cannot be told apart from an explicit false/0 after decoding.
	accessLogSet   bool
	sampleRatioSet bool
}

// singleSections are the sections that are one table, not a set of items.
var singleSections = []string{"basic", "acme", "tracing"}

// itemSections are the sections made of [SECTION.NAME] items.
var itemSections = []string{"upstreams", "locations", "servers", "plugins", "certificates"}

// decodeFile decodes one TOML document strictly: every key is decoded into
// its field one by one, so that every unknown key and every bad value is
// reported (not only the first), each located by file, section and key.
func decodeFile(data []byte, file string) (d *decoded, errs Errors) {
	d = &decoded{file: file}
	defer func() {
		// The decoder is third-party code fed with user input: a panic in it
		// must come out as a config error, never take the process down.
		if r := recover(); r != nil {
			d.broken = true
			errs = append(errs, NewError(file, "", "", fmt.Sprintf("cannot decode: %v", r)))
		}
	}()
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		d.broken = true
		return d, Errors{syntaxError(file, err)}
	}
	dec := &decoder{md: &md, file: file}
	for _, name := range sortedKeys(top) {
		prim := top[name]
		switch name {
		case "basic":
			keys := dec.table(prim, name)
			dec.fields(keys, name, []string{name}, reflect.ValueOf(&d.cfg.Basic).Elem())
			_, d.accessLogSet = keys["access_log"]
			d.singles = append(d.singles, name)
		case "acme":
			dec.fields(dec.table(prim, name), name, []string{name}, reflect.ValueOf(&d.cfg.ACME).Elem())
			d.singles = append(d.singles, name)
		case "tracing":
			keys := dec.table(prim, name)
			dec.fields(keys, name, []string{name}, reflect.ValueOf(&d.cfg.Tracing).Elem())
			_, d.sampleRatioSet = keys["sample_ratio"]
			d.singles = append(d.singles, name)
		case "upstreams":
			decodeItems(dec, prim, name, &d.cfg.Upstreams)
		case "locations":
			decodeItems(dec, prim, name, &d.cfg.Locations)
		case "servers":
			decodeItems(dec, prim, name, &d.cfg.Servers)
		case "certificates":
			decodeItems(dec, prim, name, &d.cfg.Certificates)
		case "plugins":
			dec.plugins(prim, &d.cfg.Plugins)
		default:
			if dec.isTable(prim) {
				dec.errs.Addf(file, keyString(name), "", "unknown section%s (sections are %s)",
					suggest(name, append(slices.Clone(singleSections), itemSections...)),
					strings.Join(append(slices.Clone(singleSections), itemSections...), ", "))
			} else {
				dec.errs.Addf(file, "", name, "unknown key%s (top-level keys belong in a section such as [basic])",
					suggest(name, nil))
			}
		}
	}
	return d, dec.errs
}

// decoder carries the metadata of one document while its keys are decoded.
type decoder struct {
	md   *toml.MetaData
	file string
	errs Errors
}

// table decodes prim as a TOML table into its keys; nil (and an error) when
// it is not a table.
func (d *decoder) table(prim toml.Primitive, section string) map[string]toml.Primitive {
	keys, ok := d.asTable(prim)
	if !ok {
		d.errs.Add(d.file, section, "", "must be a table")
		return nil
	}
	return keys
}

// asTable decodes prim into its keys when it is a table. (BurntSushi decodes
// a non-table into a map as an empty map without an error, so the raw value
// is checked first.)
func (d *decoder) asTable(prim toml.Primitive) (map[string]toml.Primitive, bool) {
	if !d.isTable(prim) {
		return nil, false
	}
	var keys map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &keys); err != nil {
		return nil, false
	}
	if keys == nil {
		keys = map[string]toml.Primitive{}
	}
	return keys, true
}

func (d *decoder) isTable(prim toml.Primitive) bool {
	var raw any
	if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
		return false
	}
	_, ok := raw.(map[string]any)
	return ok
}

// decodeItems decodes a [SECTION.NAME] set into *dst.
func decodeItems[T any](d *decoder, prim toml.Primitive, section string, dst *map[string]T) {
	items, ok := d.asTable(prim)
	if !ok {
		d.errs.Addf(d.file, section, "", "must be a set of [%s.NAME] tables", section)
		return
	}
	if *dst == nil {
		*dst = make(map[string]T, len(items))
	}
	for _, name := range sortedKeys(items) {
		sec := section + "." + keyString(name)
		keys := d.table(items[name], sec)
		if keys == nil {
			continue
		}
		var v T
		d.fields(keys, sec, []string{section, name}, reflect.ValueOf(&v).Elem())
		(*dst)[name] = v
	}
}

// plugins decodes the [plugins.NAME] set: category into Plugin.Category,
// every other key raw into Plugin.Options (the plugin's builder checks them).
func (d *decoder) plugins(prim toml.Primitive, dst *map[string]Plugin) {
	items, ok := d.asTable(prim)
	if !ok {
		d.errs.Add(d.file, "plugins", "", "must be a set of [plugins.NAME] tables")
		return
	}
	if *dst == nil {
		*dst = make(map[string]Plugin, len(items))
	}
	for _, name := range sortedKeys(items) {
		sec := "plugins." + keyString(name)
		keys := d.table(items[name], sec)
		if keys == nil {
			continue
		}
		(*dst)[name] = d.plugin(keys, sec)
	}
}

// plugin decodes the keys of one [plugins.NAME] table.
func (d *decoder) plugin(keys map[string]toml.Primitive, sec string) Plugin {
	var p Plugin
	for _, k := range sortedKeys(keys) {
		if k == "category" {
			if err := d.md.PrimitiveDecode(keys[k], &p.Category); err != nil {
				d.errs.Add(d.file, sec, k, "must be a string")
			}
			continue
		}
		var v any
		if err := d.md.PrimitiveDecode(keys[k], &v); err != nil {
			d.errs.Add(d.file, sec, keyString(k), stripTOMLPrefix(err.Error()))
			continue
		}
		if p.Options == nil {
			p.Options = make(map[string]any, len(keys))
		}
		p.Options[k] = normalizeValue(v)
	}
	return p
}

// fields decodes each key of a table into the matching field of the struct
// dst (by toml tag), reporting unknown keys and bad values one by one.
func (d *decoder) fields(keys map[string]toml.Primitive, section string, path []string, dst reflect.Value) {
	if keys == nil {
		return
	}
	idx := fieldIndex(dst.Type())
	for _, k := range sortedKeys(keys) {
		f, ok := idx[k]
		if !ok {
			d.errs.Add(d.file, section, keyString(k), "unknown key"+suggest(k, fieldNames(idx)))
			continue
		}
		fv := dst.FieldByIndex(f.Index)
		if f.Type.Kind() == reflect.Map && !d.isTable(keys[k]) {
			d.errs.Add(d.file, section, keyString(k), "must be "+describeType(f.Type))
			continue
		}
		if err := d.md.PrimitiveDecode(keys[k], fv.Addr().Interface()); err != nil {
			full := append(slices.Clone(path), k)
			d.errs.Add(d.file, section, keyString(k), decodeMsg(d.md, full, f.Type, err))
		}
	}
}

// fieldIndex maps the TOML key of every settable field of struct type t to
// the field (embedded structs are flattened; `toml:"-"` is skipped; an
// untagged field is known by its lower-cased name).
func fieldIndex(t reflect.Type) map[string]reflect.StructField {
	idx := make(map[string]reflect.StructField, t.NumField())
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		tag := f.Tag.Get("toml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if _, dup := idx[name]; !dup {
			idx[name] = f
		}
	}
	return idx
}

func fieldNames(idx map[string]reflect.StructField) []string { return sortedKeys(idx) }

// decodeMsg turns a decode error of one key into a message without the
// library's "toml: line N (last key ...)" decoration.
func decodeMsg(md *toml.MetaData, path []string, t reflect.Type, err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		// Errors from our UnmarshalTOML methods (Duration, Size,
		// AccessLog) come back as a ParseError carrying our message.
		return pe.Message
	}
	msg := stripTOMLPrefix(err.Error())
	if t != nil && strings.Contains(msg, "incompatible types") {
		got := strings.ToLower(md.Type(path...))
		if got == "" || got == "array" || got == "hash" {
			return "must be " + describeType(t)
		}
		return fmt.Sprintf("must be %s, not %s", describeType(t), article(got))
	}
	return msg
}

// describeType names a Go field type the way a config author thinks of it.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + plural(describeType(t.Elem()))
	case reflect.Map:
		return "a table of " + plural(describeType(t.Elem()))
	case reflect.Struct:
		return "a table"
	}
	return "a " + t.String()
}

func plural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "an "), "a ")
	if s == "true or false" {
		return "booleans"
	}
	return s + "s"
}

func article(s string) string {
	switch s {
	case "integer", "array", "inline table":
		return "an " + s
	case "bool":
		return "a boolean"
	case "hash":
		return "a table"
	}
	return "a " + s
}

// stripTOMLPrefix removes `toml: `, `line N `, `(last key "...")`: from a
// BurntSushi error message.
func stripTOMLPrefix(msg string) string {
	msg = strings.TrimPrefix(msg, "toml: ")
	if strings.HasPrefix(msg, "line ") || strings.HasPrefix(msg, "(last key") {
		if i := strings.Index(msg, "): "); i >= 0 {
			msg = msg[i+3:]
		} else if i := strings.Index(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
	}
	return msg
}

// syntaxError locates a document-level decode error.
func syntaxError(file string, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		sec, key := splitKey(pe.LastKey)
		return NewError(file, sec, key, fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message))
	}
	return NewError(file, "", "", stripTOMLPrefix(err.Error()))
}

// splitKey splits a dotted key path (as BurntSushi prints it, with quoted
// parts) into our section and key.
func splitKey(k string) (section, key string) {
	if k == "" {
		return "", ""
	}
	var parts []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(k); i++ {
		switch ch := k[i]; {
		case ch == '"':
			inQuote = !inQuote
			cur.WriteByte(ch)
		case ch == '.' && !inQuote:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	parts = append(parts, cur.String())
	switch {
	case slices.Contains(itemSections, parts[0]) && len(parts) >= 2:
		return parts[0] + "." + parts[1], strings.Join(parts[2:], ".")
	case slices.Contains(singleSections, parts[0]), slices.Contains(itemSections, parts[0]):
		return parts[0], strings.Join(parts[1:], ".")
	}
	return "", k
}

// keyString writes a key as it would appear in a TOML header: bare when
// possible, quoted otherwise.
func keyString(k string) string {
	if k != "" && isBareKey(k) {
		return k
	}
	return tomlQuote(k)
}

func isBareKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// tomlQuote writes s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// suggest returns ` (did you mean "x"?)` for the closest known name, if one
// is close enough to be a likely typo.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, n := range known {
		// Close enough: at most 2 edits, and few relative to the length
		// (so "b" does not suggest "a").
		if d := editDistance(k, n); d < bestD && d*3 <= max(len(k), len(n)) {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance (bounded inputs: config keys).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// merge combines decoded files into one Config, enforcing that each item
// and each single section is defined in one file only. When folder is set
// the file of every section is recorded (see Config.FileOf).
func merge(docs []*decoded, folder bool) (*Config, Errors) {
	c := &Config{}
	var errs Errors
	owner := map[string]string{}
	claim := func(section, file string) bool {
		if prev, ok := owner[section]; ok {
			errs.Addf(file, section, "", "also defined in %s (each section may be defined in one file only)", prev)
			return false
		}
		owner[section] = file
		return true
	}
	accessLogSet, sampleRatioSet := false, false
	for _, d := range docs {
		for _, s := range d.singles {
			if !claim(s, d.file) {
				continue
			}
			switch s {
			case "basic":
				c.Basic = d.cfg.Basic
				accessLogSet = d.accessLogSet
			case "acme":
				c.ACME = d.cfg.ACME
			case "tracing":
				c.Tracing = d.cfg.Tracing
				sampleRatioSet = d.sampleRatioSet
			}
		}
		mergeItems(&c.Upstreams, d.cfg.Upstreams, "upstreams", d.file, claim)
		mergeItems(&c.Locations, d.cfg.Locations, "locations", d.file, claim)
		mergeItems(&c.Servers, d.cfg.Servers, "servers", d.file, claim)
		mergeItems(&c.Plugins, d.cfg.Plugins, "plugins", d.file, claim)
		mergeItems(&c.Certificates, d.cfg.Certificates, "certificates", d.file, claim)
	}
	if !accessLogSet {
		c.Basic.AccessLog = AccessLog{Enabled: true}
	}
	if !sampleRatioSet {
		c.Tracing.SampleRatio = 1.0
	}
	if folder {
		c.origins = owner
	}
	return c, errs
}

func mergeItems[T any](dst *map[string]T, src map[string]T, section, file string, claim func(section, file string) bool) {
	for _, name := range sortedKeys(src) {
		if !claim(section+"."+keyString(name), file) {
			continue
		}
		if *dst == nil {
			*dst = make(map[string]T)
		}
		(*dst)[name] = src[name]
	}
}

// normalizeValue gives plugin options one shape: an array of tables is
// []any of map[string]any whether it was written inline or as [[x]] (so a
// config reads back equal after Encode).
func normalizeValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeValue(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeValue(e)
		}
		return x
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeValue(e)
		}
		return out
	}
	return v
}
