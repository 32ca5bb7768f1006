//go:build linux

// Package driver is the interface a pool backend implements ([pool.Open]),
// and what a local pool offers to a backend that feeds it work from
// elsewhere ([pool.Pool.Runner]). Users of package pool never need it: it
// is to package pool what database/sql/driver is to database/sql.
//
// # Chunks
//
// The pool cuts each call (Map, Imap, Apply...) into [Chunk]s of
// consecutive items, with their arguments already encoded, and hands each
// to [Runner.Run]. The backend runs the items and calls deliver once per
// item with its [Result]. Arguments and results are encoded exactly as the
// local pool's workers encode them: standard msgpack, one value after
// another. A chunk built by a pool over one backend therefore runs
// unchanged on another host's local pool through its Runner, and the
// results decode unchanged where the call was made.
//
// # What the pool does for the backend
//
// The pool keeps at most four chunks per worker ([Runner.Workers]) in Run
// at once, or [Pipeliner.InFlight] chunks for a backend whose chunks spend
// their time in transit, and queues the rest in call order. It accounts each item once:
// deliver returns false for an index it already has (a duplicate, say from
// a retry on another host), and ignores an index outside the chunk. Items
// Run returns without delivering fail with Run's error (or, if Run
// returned nil, with an error saying the backend lost them). The deliver
// function the pool passes is safe for concurrent use, and must not be
// called after Run returned.
//
// When a Map item fails, or the caller of a call goes away (its ctx ended,
// an Imap loop was left), the pool cancels the ctx of the chunks it no
// longer needs; their undelivered items are then dropped rather than
// failed.
//
// # What the local pool's Runner does
//
// The Runner of a local pool runs each chunk on its worker processes, as
// its own calls are run, and calls deliver for one item at a time (never
// concurrently for one chunk). Its Close and Terminate are the local
// pool's.
package driver
