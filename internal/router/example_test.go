package router_test

import (
	"fmt"

	"github.com/pingap-go/pingap/internal/router"
)

func Example() {
	// The regex needs a priority: at equal priority the prefix "/" would win.
	rt, err := router.New([]router.Route[string]{
		{Name: "api", Host: "api.example.com", Path: "/v1", PathType: router.PathPrefix, Rewrite: "/", Value: "api-pool"},
		{Name: "users", Path: `^/u/(?P<id>\d+)$`, PathType: router.PathRegex, Priority: 1, Rewrite: "/users/${id}", Value: "users-pool"},
		{Name: "default", Path: "/", Value: "web-pool"},
	})
	if err != nil {
		panic(err)
	}
	for _, q := range [][2]string{
		{"API.example.com:443", "/v1/orders"},
		{"www.example.com", "/u/42"},
		{"www.example.com", "/about"},
	} {
		m, ok := rt.Match(q[0], q[1])
		fmt.Println(ok, m.Name(), m.Value(), m.RewritePath())
	}
	// Output:
	// true api api-pool /orders
	// true users users-pool /users/42
	// true default web-pool /about
}
