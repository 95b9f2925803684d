// Package catalog is the explicit list of plugin categories: the
// [plugins.NAME] table's category picks one of these builders. There is no
// init() registration: a new category is one line in the list below (and
// its package import).
package catalog

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/basicauth"
	"github.com/pingap-go/pingap/internal/plugin/bodylimit"
	"github.com/pingap-go/pingap/internal/plugin/cache"
	"github.com/pingap-go/pingap/internal/plugin/compression"
	"github.com/pingap-go/pingap/internal/plugin/cors"
	"github.com/pingap-go/pingap/internal/plugin/csrf"
	"github.com/pingap-go/pingap/internal/plugin/forwardauth"
	"github.com/pingap-go/pingap/internal/plugin/headers"
	"github.com/pingap-go/pingap/internal/plugin/iprestriction"
	"github.com/pingap-go/pingap/internal/plugin/jwt"
	"github.com/pingap-go/pingap/internal/plugin/keyauth"
	"github.com/pingap-go/pingap/internal/plugin/limit"
	"github.com/pingap-go/pingap/internal/plugin/mock"
	"github.com/pingap-go/pingap/internal/plugin/ping"
	"github.com/pingap-go/pingap/internal/plugin/redirect"
	"github.com/pingap-go/pingap/internal/plugin/refererrestriction"
	"github.com/pingap-go/pingap/internal/plugin/requestid"
	"github.com/pingap-go/pingap/internal/plugin/uarestriction"
)

// categories is the catalogue. Keep one entry per line, grouped; the
// order does not matter (lookups go by name), duplicates are a test failure.
var categories = []plugin.Category{
	// Authentication and access control.
	{Name: jwt.Category, Build: jwt.New},
	{Name: keyauth.Category, Build: keyauth.New},
	{Name: basicauth.Category, Build: basicauth.New},
	{Name: forwardauth.Category, Build: forwardauth.New},
	{Name: csrf.Category, Build: csrf.New},
	{Name: iprestriction.Category, Build: iprestriction.New},
	{Name: uarestriction.Category, Build: uarestriction.New},
	{Name: refererrestriction.Category, Build: refererrestriction.New},

	// Request handling.
	{Name: requestid.Category, Build: requestid.New},
	{Name: mock.Category, Build: mock.New},
	{Name: ping.Category, Build: ping.New},
	{Name: redirect.Category, Build: redirect.New},
	{Name: headers.Category, Build: headers.New},

	// Traffic and content.
	{Name: limit.Category, Build: limit.New},
	{Name: bodylimit.Category, Build: bodylimit.New},
	{Name: cache.Category, Build: cache.New},
	{Name: compression.Category, Build: compression.New},
	{Name: cors.Category, Build: cors.New},
}

// Categories returns every category, sorted by name. The slice is a copy.
func Categories() []plugin.Category {
	out := append([]plugin.Category(nil), categories...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the category names, sorted.
func Names() []string {
	names := make([]string, len(categories))
	for i, c := range Categories() {
		names[i] = c.Name
	}
	return names
}

// Lookup returns the builder of a category.
func Lookup(category string) (plugin.Builder, bool) {
	for i := range categories {
		if categories[i].Name == category {
			return categories[i].Build, true
		}
	}
	return nil, false
}

// Build builds a plugin of category from its options (the [plugins.NAME]
// table without "category"). An unknown category is an error that lists the
// known ones; a builder's error is returned as is (it names the key).
func Build(env plugin.Env, category string, options map[string]any) (plugin.Plugin, error) {
	if category == "" {
		return nil, fmt.Errorf("category: required (one of %s)", strings.Join(Names(), ", "))
	}
	build, ok := Lookup(category)
	if !ok {
		return nil, fmt.Errorf("category: unknown plugin category %q (known: %s)", category, strings.Join(Names(), ", "))
	}
	if options == nil {
		options = map[string]any{}
	}
	return build(env, options)
}
