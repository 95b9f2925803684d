package logging

import (
	"encoding/json"
	"testing"
)

// checkString asserts AppendString(s) is valid JSON decoding to what
// encoding/json's own encoding of s decodes to.
func checkString(t *testing.T, s string) {
	t.Helper()
	got := AppendString(nil, s)
	if !json.Valid(got) {
		t.Fatalf("AppendString(%q) = %s: invalid JSON", s, got)
	}
	var dec string
	if err := json.Unmarshal(got, &dec); err != nil {
		t.Fatalf("AppendString(%q) = %s: %v", s, got, err)
	}
	ref, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var want string
	if err := json.Unmarshal(ref, &want); err != nil {
		t.Fatal(err)
	}
	if dec != want {
		t.Fatalf("AppendString(%q) decodes to %q, encoding/json gives %q", s, dec, want)
	}
}

var escapeCases = []string{
	"", "plain", `quote"`, `back\slash`, "nl\nx", "cr\r", "tab\t", "\x00\x01\x1f",
	"\x7f", "<script>&amp;", "é中文😀", "\xff", "a\xffb", "\xc3", "\xed\xa0\x80",
	"\u2028\u2029", "end\\", `"`, "\xf4\x90\x80\x80",
}

func TestAppendStringTable(t *testing.T) {
	for _, s := range escapeCases {
		checkString(t, s)
	}
	exact := []struct{ in, want string }{
		{`a"b`, `"a\"b"`},
		{"a\nb", `"a\nb"`},
		{"\x01", `"\u0001"`},
		{"\xff", `"\ufffd"`},
		{"\u2028", `"\u2028"`},
		{"<&>", `"<&>"`},
	}
	for _, c := range exact {
		if got := string(AppendString(nil, c.in)); got != c.want {
			t.Errorf("AppendString(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range escapeCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkString(t, s) })
}
