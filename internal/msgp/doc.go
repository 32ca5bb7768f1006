//go:build linux

// Package msgp holds the raw msgpack primitives the module's fast paths
// share: scanning a value's extent without decoding it, and appending and
// reading scalars and headers.
//
// The module's codec is github.com/vmihailenco/msgpack/v5 (through package
// wire). Some paths cannot afford it per value: the pool's task records,
// the manager's protocol, and any check of peer input before the codec
// sizes an allocation by what the input claims. They work on the bytes
// with the functions here, which write exactly what the msgpack encoder
// writes (with compact ints) and read every form it may write.
//
// # Scanning
//
// [Len] returns the length of the msgpack value at the start of a buffer
// without decoding it. [Walk] does the same and tells a [Visitor] about the
// extensions and maps on the way. Both check every length and count the
// value claims against the bytes present, and refuse nesting deeper than
// [MaxDepth], so that a value they accept can be handed to a decoder
// without letting the input choose an allocation size or a recursion
// depth. [NextType] says what kind of value a buffer starts with.
//
// # Appending
//
// [AppendNil], [AppendBool], [AppendInt], [AppendUint], [AppendFloat32],
// [AppendFloat64], [AppendString], [AppendBin], [AppendArrayHeader] and
// [AppendMapHeader] append one value, or one container header, in its
// shortest form.
//
// # Reading
//
// [ReadBool], [ReadInt], [ReadUint], [ReadFloat], [ReadString],
// [ReadBytes], [ReadArrayHeader] and [ReadMapHeader] read the value at the
// start of a buffer and return it with the number of bytes it took. The
// integer readers accept every integer encoding whose value fits. Only
// ReadString copies; ReadBytes returns a slice of the buffer.
//
// # Caveats
//
// Errors wrap one of the sentinels ([ErrShort], [ErrInvalid], [ErrDepth],
// [ErrType], [ErrRange]), except a [Visitor] hook's own; a reader or
// scanner that fails reports zero bytes taken.
//
// The readers check only their own value. In particular [ReadArrayHeader]
// and [ReadMapHeader] return the count the header claims, which peer input
// chooses: read the headers of a value [Len] has accepted (it checks every
// count against the bytes present), or bound the count before allocating
// by it.
package msgp
