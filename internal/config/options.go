package config

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/BurntSushi/toml"
)

// DecodeOptions decodes a plugin's raw option table into dst (a pointer to a
// struct with toml tags) strictly: every unknown key and every value of the
// wrong type is reported, each naming its key. The error is an Errors whose
// entries carry only Key and Msg; the engine locates them with
// Errors.Append(file, "plugins.NAME", err). Duration and Size fields accept
// the same forms as everywhere else in the config.
func DecodeOptions(options map[string]any, dst any) error {
	return decodeOptions(options, dst)
}

// decodeOptions is DecodeOptions (kept under this name for code that was
// written against an earlier version of this file).
func decodeOptions(options map[string]any, dst any) (err error) {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("DecodeOptions: dst must be a pointer to a struct, not %T", dst)
	}
	defer func() {
		if r := recover(); r != nil {
			err = Errors{NewError("", "", "", fmt.Sprintf("cannot decode options: %v", r))}
		}
	}()
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(options); err != nil {
		return Errors{NewError("", "", "", fmt.Sprintf("cannot encode options: %v", err))}
	}
	var keys map[string]toml.Primitive
	md, err := toml.Decode(buf.String(), &keys)
	if err != nil {
		return Errors{NewError("", "", "", stripTOMLPrefix(err.Error()))}
	}
	d := &decoder{md: &md}
	d.fields(keys, "", nil, rv.Elem())
	// Unknown keys inside nested tables (a struct-typed option) are only
	// visible as undecoded keys; unknown top-level keys were reported above.
	idx := fieldIndex(rv.Elem().Type())
	for _, k := range md.Undecoded() {
		if len(k) < 2 {
			continue
		}
		if f, known := idx[k[0]]; known && hasStruct(f.Type) {
			d.errs.Add("", "", k.String(), "unknown key")
		}
	}
	return d.errs.Err()
}

// hasStruct reports whether values of t are decoded field by field (so a
// leftover key is a typo), as opposed to free-form any values, which the
// TOML library does not mark as decoded.
func hasStruct(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		return true
	case reflect.Slice, reflect.Array, reflect.Pointer, reflect.Map:
		return hasStruct(t.Elem())
	}
	return false
}
