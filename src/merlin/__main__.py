# The collector off while the command's modules load (entry.run says why and when it comes back on).
import gc

gc.disable()

from merlin.cli.entry import run  # noqa: E402

if __name__ == "__main__":
    run()
