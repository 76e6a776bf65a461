"""Channels of one connection are independent: one the agent stops reading, and one
whose command stops reading its input, do not stall the others, and both finish
intact once they move again. A connection has at most 10 channels open at once.

Environment as for paramiko_client.py."""
import asyncio
import os

import asyncssh

port, key, conn, work = (os.environ[k] for k in ("SSH_PORT", "SSH_KEY", "SSH_CONN", "WORK"))
OUTPUT = 64 << 20
INPUT = 32 << 20
MAX_CHANNELS = 10


async def drain(reader):
    total = 0
    while chunk := await reader.read(1 << 16):
        total += len(chunk)
    return total


async def main():
    async with asyncssh.connect("127.0.0.1", port=int(port), username=conn, client_keys=[key],
                                known_hosts=None, agent_path=None, encoding=None) as c:
        # Channels run one after another free their places (more than the limit).
        for i in range(MAX_CHANNELS + 4):
            r = await asyncio.wait_for(c.run(f"echo seq-{i}"), 20)
            assert r.stdout == f"seq-{i}\n".encode(), r.stdout
        # Output nobody reads: every window and buffer on its way fills up.
        unread = await c.create_process(f"head -c {OUTPUT} /dev/zero")
        # Input its command does not read until told to: it waits upstream.
        go = f"{work}/go"
        # (Bounded, so that a failed run leaves no loop behind on the host.)
        unwritten = await c.create_process(f"timeout 120 sh -c 'until [ -e {go} ]; do sleep 0.1; done'; wc -c")
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
        for p in (unread, unwritten):
            await asyncio.wait_for(p.wait(), 20)

        # At most MAX_CHANNELS open at once; a closed one frees its place.
        open_now = [await c.create_process("cat") for _ in range(MAX_CHANNELS)]
        try:
            await c.create_process("cat")
            raise AssertionError("a channel past the limit was opened")
        except asyncssh.ChannelOpenError as e:
            assert e.code == asyncssh.OPEN_RESOURCE_SHORTAGE, e
        first = open_now.pop()
        first.stdin.write_eof()
        await first.wait()
        # Its place is free once Airlock has seen the channel closed on both sides.
        for _ in range(100):
            try:
                r = await asyncio.wait_for(c.run("echo again"), 20)
                break
            except asyncssh.ChannelOpenError:
                await asyncio.sleep(0.05)
        assert r.stdout == b"again\n", r.stdout
        for p in open_now:
            p.stdin.write_eof()
            await p.wait()
    print("stuck channels ok")


asyncio.run(main())
