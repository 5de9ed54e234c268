"""What tests share; the fixtures built on it are in tests/conftest.py.

    waiting.py    wait_for (sync) and wait_until (async): poll a condition, fail naming it
    configs.py    the gateway config factory: TOML with data_dir/runtime_dir under one root
    cli.py        `printer-gateway` (python -m console.cli) in a child process: argv defined once
    zmq_context.py  ending a ZeroMQ context in bounded time, naming the sockets left open
    http.py       one scripted HTTP server; on it the legacy/hook script and the hostile v1
                  API; the real reference API in a thread
    printers.py   a fast simulated printer model and a framed TCP client for it
    poller.py     the poller in-process with a collecting receiver
    processes.py  the services as real processes, alone or under supervisord (`up`)

Nothing here imports pytest: benchmarks/ may use it too.
"""
