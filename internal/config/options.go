package config

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// DecodeOptions decodes a plugin's raw option table into dst (a pointer to a
// struct with toml tags) strictly: an unknown key or a value of the wrong
// type is an error naming the key. Duration and Size fields accept the same
// forms as everywhere else in the config.
func DecodeOptions(options map[string]any, dst any) error {
	if err := decodeOptions(options, dst); err != nil {
		return nameKey(options, dst, err)
	}
	return nil
}

func decodeOptions(options map[string]any, dst any) error {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(options); err != nil {
		return fmt.Errorf("options: %w", err)
	}
	md, err := toml.Decode(buf.String(), dst)
	if err != nil {
		return cleanTOMLError(err)
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
		return fmt.Errorf("%s", strings.TrimSpace(pe.Message))
	}
	return err
}
