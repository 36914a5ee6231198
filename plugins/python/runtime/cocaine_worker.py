"""The Python worker entry: `python3 -u -B cocaine_worker.py` in the app's directory, with the
COCAINE_* environment (docs/worker-protocol.md). The runtime lives in the `cocaine` package
beside this file (cocaine/_worker.py); apps import its API as `cocaine`."""
from cocaine._worker import main

if __name__ == "__main__":
    main()
