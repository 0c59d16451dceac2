// Command hello is the program inside Slipway's demo image: a static binary that greets its
// first argument and reports what the image's layers left in /etc, so that running it shows
// the second layer's file and the first layer's file that the second one whited out.
package main

import (
	"fmt"
	"os"
)

func main() {
	who := "world"
	if len(os.Args) > 1 {
		who = os.Args[1]
	}
	fmt.Printf("hello, %s\n", who)
	if b, err := os.ReadFile("/etc/demo.conf"); err == nil {
		fmt.Printf("/etc/demo.conf: %s", b)
	} else {
		fmt.Printf("/etc/demo.conf: %v\n", err)
	}
	if _, err := os.Stat("/etc/removed.conf"); os.IsNotExist(err) {
		fmt.Println("/etc/removed.conf: whited out, as it should be")
	} else {
		fmt.Println("/etc/removed.conf: still there: whiteouts were not applied")
		os.Exit(1)
	}
}
