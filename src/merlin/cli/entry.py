"""The ``merlin`` entry point: the error boundary, and the one command line it takes without Typer.

``main()`` is the console-script entry point (and ``python -m merlin``'s). It
turns every ``MerlinError`` into its lines on stderr and its exit code; an
unexpected exception is a bug and prints one line (``MERLIN_DEBUG=1`` shows the
traceback).

``merlin ray jobs submit`` is parsed by :mod:`merlin.cli.fast_submit` from the
table generated from its Typer command, when the line holds nothing that table
does not know (help, a bad value, an unknown option: those go to Typer, which
words them). Every other command line, and every submit the fast path declines,
goes to the Typer app of :mod:`merlin.cli.app`. Nothing here imports Typer.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from merlin import __version__

#: set when main() took the fast path (this process ran a submit without Typer)
_FAST_TAKEN: list[bool] = [False]


def run() -> None:
    """The process's entry point (the console script, ``python -m merlin``): :func:`main`, and after a
    submit on the fast path, the process's end without the interpreter's teardown.

    Tearing down the ~180 modules a submit imported costs it about as much CPU as
    its own records (issue 15's budget). Everything a submit writes is written and
    synced through merlin.atomic before main() returns; stdout and stderr are flushed
    here. Where anything could still want the teardown (an atexit callback, a second
    thread, a stream that will not flush) the process ends normally.

    The garbage collector starts off (``python -m merlin`` turns it off before this
    module loads): loading a command's modules allocates tens of thousands of objects
    and frees no cycles, and the collector's passes over them cost a submit about a
    tenth of its CPU. :func:`main` turns it back on for every command but a fast-path
    submit, which ends in moments; a submit that waits for its run turns it on first.
    """
    import gc

    gc.disable()
    try:
        main()
    except SystemExit as exc:
        if not _FAST_TAKEN[0]:
            raise
        code = exc.code
        if not isinstance(code, int):
            raise
        _end(code)
        raise


def _end(code: int) -> None:
    """os._exit(code) if nothing is left for the interpreter to do at exit; returns otherwise."""
    import atexit

    pending = getattr(atexit, "_ncallbacks", lambda: 1)()
    threads = sys.modules["threading"].active_count() if "threading" in sys.modules else 1
    if pending or threads > 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # the interpreter's own exit reports it as usual
    os._exit(code)


def _collect() -> None:
    """The garbage collector back on (:func:`run` starts the process with it off)."""
    import gc

    gc.enable()


def _click(name: str) -> Any:
    """Click's exception class ``name``, or ``()`` (matches nothing) when Typer was never
    imported: then no click exception can have been raised (the fast path)."""
    if "typer" not in sys.modules:
        return ()
    from typer._click import exceptions  # typer >= 0.24 vendors click

    return getattr(exceptions, name)


def _typer_exit() -> Any:
    """``typer.Exit``, or ``()`` when Typer was never imported (then nothing raised it)."""
    if "typer" not in sys.modules:
        return ()
    from typer.exceptions import Exit

    return Exit


def _usage_line(exc: Exception) -> str:
    """One line for a bad flag or argument, naming the command and its --help."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "merlin"
    text = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    hint = _did_you_mean(exc, ctx)
    return f"{where}: {text.rstrip('.') + hint if hint else text} (see {where} --help)"


def _did_you_mean(exc: Exception, ctx: Any) -> str:
    """``; did you mean 'targetgen'?`` after "No such command 'targetgn'" (the group's commands, by similarity)."""
    import re

    found = re.match(r"No such command '(.+)'", str(exc.format_message()))  # type: ignore[attr-defined]
    if found is None or ctx is None or not hasattr(ctx.command, "list_commands"):
        return ""
    import difflib

    close = difflib.get_close_matches(found.group(1), ctx.command.list_commands(ctx), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _state_root_arg(args: list[str]) -> str | None:
    """``--state-root`` as given on the command line (else the environment / default decide)."""
    for i, a in enumerate(args):
        if a == "--":
            break
        if a == "--state-root" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--state-root="):
            return a.split("=", 1)[1]
    return None


def _hidden_parts(original: str, redacted: str) -> list[str]:
    """What redaction took out of one word (``--password=X`` -> ``["X"]``), so it can be scrubbed elsewhere."""
    import re

    from merlin.ledger.text import REDACTED

    pattern = "(.*?)".join(re.escape(piece) for piece in redacted.split(REDACTED))
    match = re.fullmatch(pattern, original, re.DOTALL)
    return [g for g in match.groups() if g] if match else [original]


def _write_crash_log(args: list[str], exc: BaseException) -> str | None:
    """Version, command and traceback of an internal error, under the state root's crash/ (None if unwritable)."""
    try:
        import traceback

        from merlin.atomic import open_state_file
        from merlin.ledger.paths import Layout, resolve_state_root
        from merlin.ledger.text import redact_argv, scrub_values

        path = Layout(resolve_state_root(_state_root_arg(args))).crash_log()
        # the command as redacted in run records; what redaction hid is scrubbed from the traceback too
        shown = redact_argv(list(args))
        hidden = [secret for a, b in zip(args, shown, strict=True) if a != b for secret in _hidden_parts(a, b)]
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        text = (
            f"merlin {__version__}\npython {sys.version.split()[0]}\ncommand: merlin {' '.join(shown)}\npid: {os.getpid()}\n\n"
            + (scrub_values(trace, hidden) or "")
        )
        with open_state_file(path, "x", encoding="utf-8") as fh:
            fh.write(text)
        return str(path)
    except Exception:
        return None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure ends as one line per problem and a documented exit code.

    With ``--json`` a failure is also a JSON document on stdout
    (``{"error", "errors", "exit_code"}``) unless the command already printed one.
    """
    from merlin.cli import output
    from merlin.errors import ExitCode, MerlinError

    args = list(sys.argv[1:] if argv is None else argv)
    if (config := sys.modules.get("merlin.cli.config")) is not None:  # an earlier call in this process (tests): read the files again
        config.forget()
    if os.environ.get("_MERLIN_COMPLETE"):  # a shell asks for completions (`merlin completion SHELL`'s script)
        from typer._completion_classes import completion_init

        completion_init()
    from merlin.cli import nextsteps

    nextsteps.ARGV[:] = args
    wants_json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args

    def fail(lines: list[str], code: int, error_code: str = "bad_input", doc: dict | None = None) -> None:
        for line in lines:  # a message may quote what a user typed (a path with ESC in it): never raw to the terminal
            sys.stderr.write(output.neutralise(line.rstrip()) + "\n")
        if wants_json and not output.emitted():
            output.emit_json(doc or {"error": lines[0] if lines else "", "errors": lines, "exit_code": code, "code": error_code, "next_steps": []})
        sys.exit(code)

    def crash(exc: BaseException) -> None:
        where = _write_crash_log(args, exc)
        note = f"; crash log: {where}" if where else ""
        fail([f"merlin: internal error: {type(exc).__name__}: {exc} (set MERLIN_DEBUG=1 for a traceback{note})"], ExitCode.INTERNAL, "internal")

    try:
        from merlin.cli.fast_submit import fast_call

        call = fast_call(args)
        if call is not None:
            _FAST_TAKEN[0] = True
            result = call()
        else:
            _collect()  # any other command may run for long (a server, a follow): the collector as usual
            from merlin.cli.app import app

            result = app(args=args, prog_name="merlin", standalone_mode=False)
    except _typer_exit() as exc:  # typer.Exit raised outside click's main (the fast path's body): its code, as click's main gives
        sys.exit(exc.exit_code)
    except _click("NoArgsIsHelpError") as exc:
        exc.show()  # the help text, as click does; exit code as click's (2: no command given)
        sys.exit(exc.exit_code)
    except _click("UsageError") as exc:
        fail([_usage_line(exc)], ExitCode.BAD_INPUT)
    except _click("ClickException") as exc:  # BadParameter raised by a callback, file errors
        fail([_usage_line(exc)], ExitCode.BAD_INPUT)
    except MerlinError as exc:
        from merlin.cli.flags import speller
        from merlin.cli.nextsteps import with_next

        spell = speller(args)  # the arguments the error names, as this command's flags
        fail(with_next(exc.render(spell), exc.next_steps, args), exc.exit_code, exc.code, exc.to_json(spell))
    except (KeyboardInterrupt, EOFError):
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(ExitCode.OK)
    except OSError as exc:
        if os.environ.get("MERLIN_DEBUG"):
            raise
        from merlin.errors import NoSpace, is_no_space

        if is_no_space(exc):  # a write outside merlin.atomic (a log, a target file): still not a bug
            from merlin.ledger.paths import STATE_ROOT_ENV

            err = NoSpace(exc.filename or os.environ.get(STATE_ROOT_ENV) or os.getcwd(), exc.errno)
            fail(err.lines, err.exit_code, err.code, err.to_json())
        if exc.filename is None:
            crash(exc)
        # a path the user chose is unusable (a file where a directory must be, no permission, ...)
        fail([f"{exc.filename}: {exc.strerror or exc} (check the path and its permissions)"], ExitCode.BAD_INPUT)
    except Exception as exc:  # a bug: say so in one line unless debugging
        if os.environ.get("MERLIN_DEBUG"):
            raise
        crash(exc)
    sys.exit(result if isinstance(result, int) else ExitCode.OK)
