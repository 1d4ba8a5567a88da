package faultproxy_test

import (
	"fmt"
	"io"
	"net"

	"github.com/projector-dev/projector/internal/faultproxy"
)

func Example() {
	// A server that greets each connection.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello"))
			_ = c.Close()
		}
	}()

	// Clients connect to the proxy instead of the server.
	p, err := faultproxy.New(ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = p.Close() }()
	c, _ := net.Dial("tcp", p.Addr())
	b, _ := io.ReadAll(c)
	_ = c.Close()
	fmt.Printf("%s\n", b)

	// Faults: new connections refused, as by a server that is down.
	p.SetRefusing(true)
	c, _ = net.Dial("tcp", p.Addr())
	b, _ = io.ReadAll(c)
	_ = c.Close()
	fmt.Printf("%q after %d connections\n", b, p.Accepted())
	// Output:
	// hello
	// "" after 2 connections
}
