package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// nameKey makes sure a DecodeOptions error names the offending key: errors
// from UnmarshalTOML methods (Size, Duration) come back from the TOML
// library without it. It re-decodes the keys one at a time into a scratch
// value of dst's type to find the first one that fails. Config load only:
// never on the request path.
func nameKey(options map[string]any, dst any, err error) error {
	if strings.Contains(err.Error(), "last key") {
		return err // the TOML library already named it
	}
	t := reflect.TypeOf(dst)
	if t == nil || t.Kind() != reflect.Pointer {
		return err
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		scratch := reflect.New(t.Elem()).Interface()
		if e := decodeOptions(map[string]any{k: options[k]}, scratch); e != nil {
			if strings.Contains(e.Error(), "last key") {
				return e
			}
			return fmt.Errorf("%s: %w", k, e)
		}
	}
	return err
}
