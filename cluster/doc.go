// Package cluster provides the toolkit across hosts, on NATS JetStream: an
// embedded NATS server ([Start]), a connection to it or to a real NATS
// cluster ([Connect]), queues with the method set of package queue
// ([OpenQueue], [OpenJoinable]) and shared dicts with the method set of
// manager.Dict ([OpenDict]).
//
// It is a module of its own (github.com/mpgo/multiprocessing/cluster), so
// that programs that stay on one machine do not pull in the NATS server.
package cluster
