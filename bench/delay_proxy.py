"""A TCP proxy that adds a fixed delay in each direction, so a round trip through it costs 2 x DELAY more:
what a worker far from its database sees. Usage: delay_proxy.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT DELAY_MS.
Bytes keep their order; only their arrival is shifted."""

import asyncio
import sys


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def deliver():
        loop = asyncio.get_running_loop()
        while True:
            due, chunk = await queue.get()
            if chunk is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    delivering = asyncio.create_task(deliver())
    loop = asyncio.get_running_loop()
    while chunk := await reader.read(65536):
        queue.put_nowait((loop.time() + delay, chunk))
    queue.put_nowait((0, None))
    await delivering


async def main(listen_port, upstream_host, upstream_port, delay_ms):
    delay = delay_ms / 1000

    async def handle(client_reader, client_writer):
        upstream_reader, upstream_writer = await asyncio.open_connection(upstream_host, upstream_port)
        await asyncio.gather(
            pump(client_reader, upstream_writer, delay),
            pump(upstream_reader, client_writer, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print(f"delay proxy on 127.0.0.1:{listen_port} -> {upstream_host}:{upstream_port}, +{delay_ms} ms each way", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
