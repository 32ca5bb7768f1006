"""Python's side of the pipe interop tests (stdlib only).

    interop.py client ADDR KEY   connect to a Go Listener, exchange bytes
    interop.py server ADDR KEY   listen, accept one Go Dial, exchange bytes

ADDR is a unix socket path or HOST:PORT. Exit 0 on success, 4 on an
authentication failure (the message goes to stdout first).
"""
import sys
from multiprocessing.connection import Client, Listener, AuthenticationError


def parse(addr):
    if ":" in addr:
        host, port = addr.rsplit(":", 1)
        return (host, int(port))
    return addr


def exchange(conn):
    # Go sends a greeting, an empty message and a 100 KiB message;
    # Python answers each upper-cased, then sends its own 1 MiB message.
    for _ in range(3):
        data = conn.recv_bytes()
        conn.send_bytes(data.upper())
    conn.send_bytes(bytes(range(256)) * 4096)
    conn.close()


def main():
    mode, addr, key = sys.argv[1], parse(sys.argv[2]), sys.argv[3].encode()
    try:
        if mode == "client":
            exchange(Client(addr, authkey=key))
        else:
            with Listener(addr, authkey=key) as l:
                print("ready", flush=True)
                exchange(l.accept())
    except AuthenticationError as e:
        print("AUTHFAIL", e, flush=True)
        sys.exit(4)


main()
