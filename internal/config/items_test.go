package config

import (
	"reflect"
	"testing"
)

func TestItemsRoundTrip(t *testing.T) {
	c1, err := Parse([]byte(fullConfig), "full.toml")
	if err != nil {
		t.Fatal(err)
	}
	items, err := EncodeItems(c1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := items["locations/api"]; !ok {
		t.Fatalf("no locations/api item: %v", items)
	}
	c2, err := ParseItems(items, "etcd://127.0.0.1:2379/pingap")
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.FileOf("locations.api"); got != "etcd://127.0.0.1:2379/pingap/locations/api" {
		t.Errorf("FileOf = %q", got)
	}
	c1.Source, c2.Source = "", ""
	c2.origins = nil
	if !reflect.DeepEqual(c1, c2) {
		t.Errorf("items round trip differs\nfirst  %+v\nsecond %+v", c1, c2)
	}
}

func TestParseItemsErrors(t *testing.T) {
	_, err := ParseItems(map[string][]byte{
		"basic":         []byte("nme = 1\n"),
		"upstreams/a":   []byte("addrs = [\"127.0.0.1:1\"]\n"),
		"locations/l":   []byte("upstream = \"b\"\n"),
		"servers/s":     []byte("addr = \"127.0.0.1:8080\"\nlocations = [\"l\"]\n"),
		"widgets/w":     []byte(""),
		"plugins/p":     []byte("category = \n"),
		"upstreams/a/b": []byte(""),
	}, "etcd://h:2379/p/")
	want := `etcd://h:2379/p/basic: [basic] nme: unknown key (did you mean "name"?)` + "\n" +
		`etcd://h:2379/p/plugins/p: [plugins.p] category: line 1: expected value but found '\n' instead` + "\n" +
		`etcd://h:2379/p/upstreams/a/b: unknown entry "upstreams/a/b" (want basic, acme, tracing or KIND/NAME with KIND one of upstreams, locations, servers, plugins, certificates)` + "\n" +
		`etcd://h:2379/p/widgets/w: unknown entry "widgets/w" (want basic, acme, tracing or KIND/NAME with KIND one of upstreams, locations, servers, plugins, certificates)`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}

	_, err = ParseItems(map[string][]byte{
		"upstreams/a": []byte("addrs = [\"127.0.0.1:1\"]\n"),
		"locations/l": []byte("upstream = \"b\"\n"),
		"servers/s":   []byte("addr = \"127.0.0.1:8080\"\nlocations = [\"l\"]\n"),
	}, "etcd://h:2379/p")
	want = `etcd://h:2379/p/locations/l: [locations.l] upstream: unknown upstream "b"`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
