//go:build linux

package manager

import (
	"fmt"
)

// The protocol, over a pipe.Conn that passed the authkey handshake.
//
// Each pipe message is a batch: one or more msgpack arrays back to back.
// A client goroutine encodes its request on its own, then appends it to
// the connection's outgoing batch; whoever finds no write in progress
// sends the batch. So one goroutine alone pays one write per call, and
// many goroutines on one connection share writes (and the server's reads
// and replies) without waiting for each other's round trips.
//
//	request: [callID, op, object, args...]
//	reply:   [callID, code, payload, grants]
//
// callID 0 asks for no reply (opDecref, opCancel). Replies come back in
// any order; the client matches them by callID. code is codeOK or one of
// the other reply codes; payload is the result (one msgpack value, nil when
// there is none) or, for an error code, the server's message. grants lists
// the object ids the reply hands this connection a reference to (see
// lifetime.go); it is nil almost always.
const (
	protocolVersion = 1

	// defaultMaxMessage is the default limit on one batch, request or
	// reply: a request larger than this is refused by the client before
	// it is sent, and a frame announcing more is refused by the server
	// before it allocates anything.
	defaultMaxMessage = 64 << 20

	// maxRefPayload bounds the encoded reference inside a proxy extension.
	maxRefPayload = 4096
)

// kind is the type of a shared object.
type kind uint8

const (
	kindDict kind = iota + 1
	kindList
	kindNamespace
	kindValue
	kindArray
	kindQueue
	kindJoinable
	kindLock
	kindRLock
	kindSemaphore
	kindBoundedSemaphore
	kindCondition
	kindEvent
	kindBarrier
	kindObject // a registered user type
	kindEnd
)

var kindNames = [...]string{
	kindDict: "Dict", kindList: "List", kindNamespace: "Namespace", kindValue: "Value",
	kindArray: "Array", kindQueue: "Queue", kindJoinable: "Joinable", kindLock: "Lock",
	kindRLock: "RLock", kindSemaphore: "Semaphore", kindBoundedSemaphore: "BoundedSemaphore",
	kindCondition: "Condition", kindEvent: "Event", kindBarrier: "Barrier", kindObject: "Object",
}

func (k kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// op is a request's operation. The server dispatches on (kind, op).
type op uint8

const (
	// Session operations; the object field is as noted.
	opHello  op = iota + 1 // args: version; result: [version, serverID, maxMessage]
	opCreate               // args: kind, name|nil, param; grants the new object
	opDecref               // object, args: n; no reply
	opRedeem               // object, args: token, kind; grants the object
	opExport               // object; result: token
	opCancel               // object = the callID to cancel; no reply
	opStats                // result: [objects, connections, tokens]

	// Container operations.
	opGet        // Dict/Namespace: key; List/Array: index; Value, Queue (blocking)
	opSet        // key|index, value; Value: value; Event: (none)
	opDelete     // key
	opLen        // Dict, List, Array, Namespace, Queue
	opKeys       // Dict, Namespace
	opItems      // Dict
	opUpdate     // Dict: map
	opClear      // Dict, List, Event
	opSetDefault // key, value
	opPop        // Dict: key; List: index
	opAdd        // Dict: key, delta, numType; Array: index, delta, numType; Value: delta, numType
	opCAS        // Dict: key, old, new, oldIsZero; Array: index, old, new; Value: old, new
	opAppend     // List
	opExtend     // List: array
	opInsert     // List: index, value
	opRemove     // List: value
	opIndex      // List: value
	opSlice      // List, Array

	// Queue operations.
	opPut      // value (blocking)
	opTryPut   // value
	opTryGet   //
	opEmpty    //
	opFull     //
	opTaskDone //
	opJoin     // (blocking)

	// Synchronisation operations.
	opAcquire    // (blocking)
	opTryAcquire //
	opUnlock     // Release
	opSemValue   //
	opWait       // Condition, Event, Barrier (blocking)
	opNotify     // Condition: n (-1 = all)
	opIsSet      // Event
	opAbort      // Barrier
	opReset      // Barrier
	opBroken     // Barrier
	opNWaiting   // Barrier
	opParties    // Barrier

	// Registered types.
	opCall // method, args array (blocking: runs outside the server lock)
)

// opNames are the names errors give operations: the method the caller
// used where there is one.
var opNames = map[op]string{
	opHello: "Hello", opCreate: "New", opDecref: "Release", opRedeem: "Bind", opExport: "Export",
	opGet: "Get", opSet: "Set", opDelete: "Delete", opLen: "Len", opKeys: "Keys", opItems: "Items",
	opUpdate: "Update", opClear: "Clear", opSetDefault: "SetDefault", opPop: "Pop", opAdd: "Add",
	opCAS: "CompareAndSwap", opAppend: "Append", opExtend: "Extend", opInsert: "Insert",
	opRemove: "Remove", opIndex: "Index", opSlice: "Slice", opPut: "Put", opTryPut: "TryPut",
	opTryGet: "TryGet", opEmpty: "Empty", opFull: "Full", opTaskDone: "TaskDone", opJoin: "Join",
	opAcquire: "Acquire", opTryAcquire: "TryAcquire", opUnlock: "Release", opSemValue: "Value",
	opWait: "Wait", opNotify: "Notify", opIsSet: "IsSet", opAbort: "Abort", opReset: "Reset",
	opBroken: "Broken", opNWaiting: "NWaiting", opParties: "Parties", opCall: "Call",
}

func (o op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("op%d", uint8(o))
}
