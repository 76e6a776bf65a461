"""Channels of one connection are independent: one the agent stops reading, and one
whose command stops reading its input, do not stall the others, and both finish
intact once they move again.

Environment as for paramiko_client.py."""
import asyncio
import os

import asyncssh

port, key, conn, work = (os.environ[k] for k in ("SSH_PORT", "SSH_KEY", "SSH_CONN", "WORK"))
OUTPUT = 64 << 20
INPUT = 32 << 20


async def drain(reader):
    total = 0
    while chunk := await reader.read(1 << 16):
        total += len(chunk)
    return total


async def main():
    async with asyncssh.connect("127.0.0.1", port=int(port), username=conn, client_keys=[key],
                                known_hosts=None, agent_path=None, encoding=None) as c:
        # Output nobody reads: every window and buffer on its way fills up.
        unread = await c.create_process(f"head -c {OUTPUT} /dev/zero")
        # Input its command does not read until told to: it waits upstream.
        go = f"{work}/go"
        unwritten = await c.create_process(f"until [ -e {go} ]; do sleep 0.1; done; wc -c")
        unwritten.stdin.write(b"x" * INPUT)
        unwritten.stdin.write_eof()
        await asyncio.sleep(2)
        for i in range(3):
            r = await asyncio.wait_for(c.run(f"echo other-{i}"), 20)
            assert r.stdout == f"other-{i}\n".encode(), r.stdout
        await asyncio.wait_for(c.run(f"touch {go}", check=True), 20)
        counted = await asyncio.wait_for(unwritten.stdout.read(), 60)
        assert counted.strip() == str(INPUT).encode(), counted
        got = await asyncio.wait_for(drain(unread.stdout), 120)
        assert got == OUTPUT, got
    print("stuck channels ok")


asyncio.run(main())
