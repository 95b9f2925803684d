package config

import (
	"testing"
)

// FuzzParse feeds arbitrary documents to Parse: it must never panic, and a
// config it accepts must encode and parse back. Seeds live in
// testdata/fuzz/FuzzParse; the validation cases are added too. CI runs it
// briefly: go test -run=^$ -fuzz=FuzzParse -fuzztime=10s ./internal/config
func FuzzParse(f *testing.F) {
	for _, tc := range validateCases {
		f.Add([]byte(tc.toml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			return
		}
		out, err := Encode(c)
		if err != nil {
			// Options that TOML cannot write back (none known) would be a
			// bug in Encode, not in the input.
			t.Fatalf("Encode of a valid config: %v", err)
		}
		if _, err := Parse(out, "fuzz.toml"); err != nil {
			t.Fatalf("encoded config does not parse back: %v\n%s", err, out)
		}
		_ = Clone(c)
	})
}
