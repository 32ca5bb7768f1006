#!/usr/bin/env python3
"""The Python side of the benchmark table: the same workloads as the Go
benchmarks, on Python's own multiprocessing. Stdlib only.

    python3 bench/python_bench.py [--methods spawn,fork] [--only NAME] [--repeats 3]

Prints one line per result, `name/method<TAB>value<TAB>unit`, each the
median of the repeats. The steady-state workloads (pipes, queues, locks,
pool throughput, manager) run under the first method only: the start
method changes how a process starts, not how fast it talks.
"""
import argparse
import multiprocessing as mp
import statistics
import sys
import time

now = time.perf_counter
REPEATS = 3


def emit(name, method, samples, unit):
    print(f"{name}/{method}\t{statistics.median(samples):.6g}\t{unit}", flush=True)


# Child targets live at module level so that spawn can import them.

def noop():
    pass


def identity(x):
    return x


def echo(conn, raw):
    recv, send = (conn.recv_bytes, conn.send_bytes) if raw else (conn.recv, conn.send)
    while True:
        x = recv()
        if x is None or x == b"":
            return
        send(x)


def sink(rd, wr):
    while True:
        total = 0
        while True:
            b = rd.recv_bytes()
            if not b:
                break
            total += len(b)
        wr.send(total)
        if total == 0:
            return


def producer(q, n, ready, go, joinable):
    ready.put(1)
    go.wait()
    for i in range(n):
        q.put(i)
    q.put(None)
    if joinable:
        q.join()


def consumer(q, ready, go, done, joinable):
    ready.put(1)
    go.wait()
    count = 0
    while True:
        x = q.get()
        if joinable:
            q.task_done()
        if x is None:
            break
        count += 1
    done.put(count)


def queue_echo(qin, qout):
    while True:
        x = qin.get()
        if x is None:
            return
        qout.put(x)


def dict_client(d, n, out):
    d.get(-1)
    t0 = now()
    for i in range(n):
        d[i] = i
    for i in range(n):
        d[i]
    out.put(2 * n / (now() - t0))


def locker(lock, val, n, ready, go, done):
    ready.put(1)
    go.wait()
    for _ in range(n):
        lock.acquire()
        val.value += 1
        lock.release()
    done.put(1)


def half_summer(arr, half, conn):
    view = memoryview(arr).cast("B").cast("d")  # ctypes' format is "<d"
    n = len(view) // 2
    part = view[half * n:(half + 1) * n]
    while conn.recv():
        conn.send(sum(part))


def queue_summer(q, conn):
    while conn.recv():
        total = 0.0
        while True:
            c = q.get()
            if not len(c):
                break
            total += sum(c)
        conn.send(total)


def timed(f, repeats=None):
    return [f() for _ in range(repeats or REPEATS)]


# Workloads. Each takes the context and the method name.

def start_join(ctx, m, n=20):
    def once():
        t0 = now()
        for _ in range(n):
            p = ctx.Process(target=noop)
            p.start()
            p.join()
        return (now() - t0) / n * 1e3
    emit("process_start_join", m, timed(once), "ms")


def pool_startup(ctx, m, n=5):
    def once():
        t0 = now()
        for _ in range(n):
            pool = ctx.Pool(2)
            pool.close()
            pool.join()
        return (now() - t0) / n * 1e3
    emit("pool_startup", m, timed(once), "ms")


def pingpong(ctx, m, n=20000):
    for name, raw, msg, stop in (("pipe_pingpong_small", False, (1, "x"), None),
                                 ("pipe_pingpong_bytes", True, b"12345678", b"")):
        a, b = ctx.Pipe()
        p = ctx.Process(target=echo, args=(b, raw))
        p.start()
        send, recv = (a.send_bytes, a.recv_bytes) if raw else (a.send, a.recv)

        def once():
            t0 = now()
            for _ in range(n):
                send(msg)
                recv()
            return (now() - t0) / n * 1e6
        once()
        emit(name, m, timed(once), "us/roundtrip")
        send(stop)
        p.join()


def throughput(ctx, m, total=256 << 20, chunk=1 << 20):
    buf = b"x" * chunk
    for name in ("pipe_throughput", "pipe_throughput_simplex"):
        if name == "pipe_throughput":
            a, b = ctx.Pipe()
            wr, rd, args = a, a, (b, b)
        else:
            r1, w1 = ctx.Pipe(duplex=False)
            r2, w2 = ctx.Pipe(duplex=False)
            wr, rd, args = w1, r2, (r1, w2)
        p = ctx.Process(target=sink, args=args)
        p.start()

        def once():
            t0 = now()
            for _ in range(total // chunk):
                wr.send_bytes(buf)
            wr.send_bytes(b"")
            assert rd.recv() == total
            return total / (now() - t0) / 1e6
        emit(name, m, timed(once), "MB/s")
        wr.send_bytes(b"")
        rd.recv()
        p.join()


def queues(ctx, m, n=200_000):
    def run(nprod, ncons, joinable):
        q = ctx.JoinableQueue() if joinable else ctx.Queue()
        ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        procs = [ctx.Process(target=producer, args=(q, n // nprod, ready, go, joinable)) for _ in range(nprod)]
        procs += [ctx.Process(target=consumer, args=(q, ready, go, done, joinable)) for _ in range(ncons)]
        for p in procs:
            p.start()
        for _ in procs:
            ready.get()
        t0 = now()
        go.set()
        got = sum(done.get() for _ in range(ncons))
        dt = now() - t0
        for p in procs:
            p.join()
        assert got == n // nprod * nprod
        return got / dt
    emit("queue_throughput_1to1", m, timed(lambda: run(1, 1, False)), "items/s")
    emit("queue_throughput_4to4", m, timed(lambda: run(4, 4, False)), "items/s")
    emit("joinable_queue_throughput_1to1", m, timed(lambda: run(1, 1, True)), "items/s")


def queue_latency(ctx, m, n=10_000):
    q1, q2 = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=queue_echo, args=(q1, q2))
    p.start()

    def once():
        t0 = now()
        for _ in range(n):
            q1.put(1)
            q2.get()
        return (now() - t0) / n * 1e6
    once()
    emit("queue_latency", m, timed(once), "us/roundtrip")
    q1.put(None)
    p.join()


def locks(ctx, m, n_unc=500_000, n_con=100_000):
    lock = ctx.Lock()

    def unc():
        t0 = now()
        for _ in range(n_unc):
            lock.acquire()
            lock.release()
        return n_unc / (now() - t0)
    emit("lock_uncontended", m, timed(unc), "pairs/s")

    def con():
        val = ctx.Value("q", 0, lock=False)
        ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        procs = [ctx.Process(target=locker, args=(lock, val, n_con, ready, go, done)) for _ in range(2)]
        for p in procs:
            p.start()
        for _ in procs:
            ready.get()
        t0 = now()
        go.set()
        for _ in procs:
            done.get()
        dt = now() - t0
        for p in procs:
            p.join()
        assert val.value == 2 * n_con
        return 2 * n_con / dt
    emit("lock_contended", m, timed(con), "ops/s")


def pool(ctx, m, n_map=200_000, n_async=20_000):
    with ctx.Pool(2) as p:
        p.map(identity, range(1000))

        def mapped():
            t0 = now()
            assert len(p.map(identity, range(n_map))) == n_map
            return n_map / (now() - t0)
        emit("pool_map_trivial", m, timed(mapped), "tasks/s")

        def applied():
            t0 = now()
            for r in [p.apply_async(identity, (i,)) for i in range(n_async)]:
                r.get()
            return n_async / (now() - t0)
        emit("pool_apply_async_trivial", m, timed(applied), "tasks/s")


def manager(ctx, m, n=10_000):
    with ctx.Manager() as mgr:
        d, out = mgr.dict(), ctx.Queue()

        def once():
            p = ctx.Process(target=dict_client, args=(d, n, out))
            p.start()
            r = out.get()
            p.join()
            return r
        emit("manager_dict_ops", m, timed(once), "ops/s")


def value_add(ctx, m, n=300_000):
    # Python's Value needs its lock around "+= 1"; Go's Value.Add does not.
    v = ctx.Value("q", 0)

    def once():
        t0 = now()
        for _ in range(n):
            with v.get_lock():
                v.value += 1
        return n / (now() - t0)
    emit("value_add", m, timed(once), "adds/s")


def handoff(ctx, m, n=8 << 20, chunk=128 << 10):
    """64 MiB of float64s to 2 workers to sum, each half: written into a
    RawArray, or put on a Queue in 1 MiB chunks (as sharedmem's
    BenchmarkHandOffShared and BenchmarkHandOffQueue)."""
    import array
    src = array.array("d", (float(i & 1023) for i in range(n)))
    arr = ctx.RawArray("d", n)
    conns, procs = [], []
    for half in range(2):
        a, b = ctx.Pipe()
        p = ctx.Process(target=half_summer, args=(arr, half, b))
        p.start()
        conns.append(a)
        procs.append(p)

    def shared():
        t0 = now()
        memoryview(arr).cast("B")[:] = memoryview(src).cast("B")
        for c in conns:
            c.send(1)
        for c in conns:
            c.recv()
        return n * 8 / 1e6 / (now() - t0)
    emit("sharedmem_handoff", m, timed(shared), "MB/s")
    for c, p in zip(conns, procs):
        c.send(0)
        p.join()

    q = ctx.Queue(8)
    conns, procs = [], []
    for _ in range(2):
        a, b = ctx.Pipe()
        p = ctx.Process(target=queue_summer, args=(q, b))
        p.start()
        conns.append(a)
        procs.append(p)
    empty = array.array("d")

    def queued():
        t0 = now()
        for c in conns:
            c.send(1)
        for lo in range(0, n, chunk):
            q.put(src[lo:lo + chunk])
        for _ in conns:
            q.put(empty)
        for c in conns:
            c.recv()
        return n * 8 / 1e6 / (now() - t0)
    emit("queue_handoff", m, timed(queued), "MB/s")
    for c, p in zip(conns, procs):
        c.send(0)
        p.join()


START = [start_join, pool_startup]
STEADY = [pingpong, throughput, queue_latency, queues, locks, pool, manager, value_add, handoff]


def main():
    global REPEATS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="spawn,fork")
    ap.add_argument("--only", default="", help="run workloads whose function name contains this")
    ap.add_argument("--repeats", type=int, default=REPEATS)
    args = ap.parse_args()
    REPEATS = args.repeats
    for i, m in enumerate(x for x in args.methods.split(",") if x):
        ctx = mp.get_context(m)
        for f in START + (STEADY if i == 0 else []):
            if args.only in f.__name__:
                f(ctx, m)


if __name__ == "__main__":
    main()
