//go:build linux

package msgp_test

import (
	"fmt"

	"github.com/mpgo/multiprocessing/internal/msgp"
)

// A value is measured, and its extensions found, without decoding it.
func ExampleWalk() {
	b := msgp.AppendArrayHeader(nil, 3)
	b = msgp.AppendString(b, "id")
	b = append(b, 0xd4, 7, 0x2a) // fixext 1 of type 7
	b = msgp.AppendInt(b, -1)
	b = append(b, "next value"...)

	n, err := msgp.Walk(b, &msgp.Visitor{
		Ext: func(typ int8, data []byte) error {
			fmt.Printf("ext %d: %x\n", typ, data)
			return nil
		},
	})
	fmt.Println(n, err)
	// Output:
	// ext 7: 2a
	// 8 <nil>
}
