"""Imports the app's entrypoint and collects its handlers."""
import os
import sys

import cocaine

_CO_COROUTINE = 0x80
_CO_ASYNC_GENERATOR = 0x200


def _fail(entrypoint, message=None):
    sys.stderr.write("cocaine python runtime: cannot load the entrypoint %s\n" % entrypoint)
    if message:
        sys.stderr.write(message + "\n")
    else:
        import traceback

        traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)


def load_app(entrypoint):
    """Imports the entrypoint (a .py file relative to the working directory) once, as a module
    named after the file, and returns {event: callable}: the @handler-registered functions, or,
    when there are none, the module's public functions."""
    cwd = os.getcwd()
    path = os.path.normpath(os.path.join(cwd, entrypoint))
    # The app's own modules import like they would with `python3 <entrypoint>` from its root.
    for directory in (os.path.dirname(path), cwd):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    if not os.path.isfile(path):
        _fail(entrypoint, "FileNotFoundError: no such file: %s" % path)
    name = os.path.splitext(os.path.basename(path))[0]
    if not name.isidentifier() or name in sys.modules:
        name = "cocaine_app"
    # What importlib does for a source file, without importing importlib.util (start-up time).
    module = type(sys)(name)
    module.__file__ = path
    sys.modules[name] = module
    try:
        with open(path, "rb") as source:
            code = compile(source.read(), path, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except BaseException:
        _fail(entrypoint)

    handlers = cocaine.handlers()
    if not handlers:
        handlers = {
            key: value
            for key, value in vars(module).items()
            if not key.startswith("_") and callable(value) and getattr(value, "__module__", None) == name and not isinstance(value, type)
        }
    if not handlers:
        _fail(
            entrypoint,
            "the module defines no handlers: decorate functions with @cocaine.handler, or define public functions named after the events",
        )
    if any(_is_async(fn) for fn in handlers.values()):
        # Imported now, not on the first call: asyncio takes tens of milliseconds to import.
        import asyncio  # noqa: F401
    return handlers


def _is_async(fn):
    code = getattr(fn, "__code__", None)
    return code is not None and bool(code.co_flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR))
