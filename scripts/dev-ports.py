#!/usr/bin/env python3
"""Pick free loopback ports for `anode dev` and the extra listeners of a script.

Prints `BASE P1 P2 ...`: a base port whose `anode dev` ports are all free (base, +80,
+100..103, +180..183, +2000: masters, their admin ports, chunkservers and their admin ports,
the gateway's admin port), then one free port per offset given on the command line (relative
to BASE). Used by the bench and test scripts that start `anode dev`.

    read -r base s3port hookport < <(python3 scripts/dev-ports.py 2500 2600)
"""
import random
import socket
import sys


def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    extra = [int(a) for a in sys.argv[1:]]
    while True:
        b = random.randrange(20000, 29000)
        dev = [b, b + 80, b + 2000] + [b + 100 + i for i in range(4)] + [b + 180 + i for i in range(4)]
        if all(free(p) for p in dev + [b + o for o in extra]):
            print(" ".join(str(p) for p in [b] + [b + o for o in extra]))
            return


if __name__ == "__main__":
    main()
