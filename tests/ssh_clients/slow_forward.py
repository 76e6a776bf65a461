"""A forwarded connection the host is still connecting does not hold up the other
channels of its connection: while the host's connect to a destination that does not
answer (a listener whose backlog is full) is pending, an exec on the same connection
runs. The forwarded connection still opens once the destination accepts.

Environment as for paramiko_client.py."""
import asyncio
import os
import socket
import threading

import asyncssh

port, key, conn = (os.environ[k] for k in ("SSH_PORT", "SSH_KEY", "SSH_CONN"))


def full_listener():
    """A listener whose backlog is full: a new connect to it waits for a SYN retry."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    dest = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", dest))
        except (socket.timeout, BlockingIOError):
            probe.close()
            return listener, dest, fillers
        fillers.append(probe)
    raise SystemExit("the listener's backlog never filled")


def greet(listener):
    """Accepts every connection (the fillers' first) and greets it."""
    while True:
        s, _ = listener.accept()
        try:
            s.sendall(b"through\n")
        except OSError:
            pass


async def main():
    listener, dest, fillers = full_listener()
    async with asyncssh.connect("127.0.0.1", port=int(port), username=conn, client_keys=[key],
                                known_hosts=None, agent_path=None) as c:
        opening = asyncio.ensure_future(c.open_connection("127.0.0.1", dest))
        await asyncio.sleep(1)
        assert not opening.done(), "the destination answered at once: nothing was pending"
        # Bounded far below the host's connect timeout (over a minute of SYN retries).
        r = await asyncio.wait_for(c.run("echo beside", check=True), 20)
        assert r.stdout == "beside\n", r.stdout
        assert not opening.done(), "the forwarded connection should still be pending"
        # The destination makes room: the host's connect completes on a retry.
        threading.Thread(target=greet, args=(listener,), daemon=True).start()
        for f in fillers:
            f.close()
        reader, writer = await asyncio.wait_for(opening, 60)
        line = await asyncio.wait_for(reader.readline(), 20)
        assert line == b"through\n", line
        writer.close()
    print("ok")


asyncio.run(main())
