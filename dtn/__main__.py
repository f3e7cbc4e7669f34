"""``python -m dtn`` is the ``dtn`` command."""

from dtn.cli.dtn import run

if __name__ == "__main__":
    run()
