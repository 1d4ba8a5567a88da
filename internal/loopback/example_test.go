package loopback_test

import (
	"fmt"
	"net"

	"github.com/projector-dev/projector/internal/loopback"
)

// A test picks an address for a command to listen on before it starts the command.
func ExampleFreeAddr() {
	addr, err := loopback.FreeAddr()
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := net.Listen("tcp", addr) // what the started command does
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	host, _, _ := net.SplitHostPort(l.Addr().String())
	fmt.Println(host)
	// Output: 127.0.0.1
}
