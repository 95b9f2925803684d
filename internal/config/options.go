package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// DecodeOptions decodes a plugin's raw option table into dst (a pointer to a
// struct with toml tags) strictly: an unknown key or a value of the wrong
// type is an error naming the key. Duration and Size fields accept the same
// forms as everywhere else in the config.
func DecodeOptions(options map[string]any, dst any) error {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(options); err != nil {
		return fmt.Errorf("options: %w", err)
	}
	md, err := toml.Decode(buf.String(), dst)
	if err != nil {
		return cleanTOMLError(err)
	}
	if err := checkTables(options, dst); err != nil {
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	return nil
}

// cleanTOMLError turns a decode error into one line that names the key when
// the library reports it.
func cleanTOMLError(err error) error {
	var pe toml.ParseError
	if e, ok := err.(toml.ParseError); ok {
		pe = e
		msg := strings.TrimSpace(pe.Message)
		// Errors from UnmarshalTOML (Duration, Size) carry the key only in
		// LastKey; the library's own type errors already quote it.
		if pe.LastKey != "" && !strings.Contains(msg, pe.LastKey) {
			return fmt.Errorf("%s: %s", pe.LastKey, msg)
		}
		return fmt.Errorf("%s", msg)
	}
	return err
}

// checkTables reports a map-typed field whose option is not a table: the
// TOML library silently leaves such a field empty (an array given for a
// table decodes to nothing), which would hide a config mistake.
func checkTables(options map[string]any, dst any) error {
	rv := reflect.ValueOf(dst)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil
	}
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if f.Type.Kind() != reflect.Map {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		v, ok := options[name]
		if !ok || v == nil {
			continue
		}
		if reflect.ValueOf(v).Kind() != reflect.Map {
			return fmt.Errorf("%s: must be a table (Name = value), got %T", name, v)
		}
	}
	return nil
}
