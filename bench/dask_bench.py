#!/usr/bin/env python3
"""The Dask side of the cluster rows: the pool workloads on a Dask
LocalCluster of 2 worker processes with 1 thread each, as a Python user
would start one (Debian's python3-distributed, for the system python3).

    /usr/bin/python3 bench/dask_bench.py [N]

Prints one line per result, `name<TAB>value<TAB>unit` (the median of 3
repeats), as python_bench.py does.
"""
import statistics
import sys
import time

from dask.distributed import Client, LocalCluster, wait


def identity(x):
    return x


def median3(f):
    return statistics.median(f() for _ in range(3))


def main():
    n_map = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)

    def bmap():
        t = time.perf_counter()
        res = client.gather(client.map(identity, range(n_map), pure=False))
        assert res == list(range(n_map))
        return n_map / (time.perf_counter() - t)

    def bsubmit():
        n = 2000
        t = time.perf_counter()
        fs = [client.submit(identity, i, pure=False) for i in range(n)]
        wait(fs)
        assert [f.result() for f in fs] == list(range(n))
        return n / (time.perf_counter() - t)

    def roundtrip():
        n = 200
        t = time.perf_counter()
        for i in range(n):
            assert client.submit(identity, i, pure=False).result() == i
        return (time.perf_counter() - t) / n * 1e6

    print(f"dask_map_trivial\t{median3(bmap):.6g}\ttasks/s", flush=True)
    print(f"dask_submit_trivial\t{median3(bsubmit):.6g}\ttasks/s", flush=True)
    print(f"dask_task_roundtrip\t{median3(roundtrip):.6g}\tus", flush=True)
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
