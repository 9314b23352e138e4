"""`procmap TARGET --watch`: the map, live: a full screen, lines, or JSON Lines."""

from __future__ import annotations

import sys

from .base import make_console

ENDING_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


class _Ending:
    """The ending signals as Ctrl-C (KeyboardInterrupt), held back while the terminal
    is being written: a frame cut in half leaves rich's console buffering, and
    then the sequences that give the terminal back are never written."""

    def __init__(self) -> None:
        self.holding = False
        self.pending = False

    def install(self) -> None:
        import signal

        for name in ENDING_SIGNALS:
            signal.signal(getattr(signal, name), self.handle)

    def handle(self, signum, frame) -> None:
        if self.holding:
            self.pending = True
            return
        raise KeyboardInterrupt

    def __enter__(self) -> None:
        self.holding = True

    def __exit__(self, *exc) -> None:
        self.holding = False
        if self.pending and exc[0] is None:
            self.pending = False
            raise KeyboardInterrupt

    def ignore(self) -> None:
        """From now on: the watch is ending, and what is left (giving the terminal
        back, the summary) is short; a second Ctrl-C must not cut it."""
        import signal

        for name in ENDING_SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def watch_process(
    pid: int,
    interval: float,
    count: int | None,
    as_json: bool,
    kinds,
    rss: bool = False,
    shared: bool = False,
) -> None:
    from ..live.sampler import Sampler
    from ..live.watch import History, ResidentWatch

    # A polite kill, a hangup (the terminal closed) and a quit (Ctrl-\\) end the watch
    # as Ctrl-C does: with the terminal given back, its summary (and end record),
    # and exit status 0.  Their default actions would leave a live view's terminal
    # on the full screen with the cursor hidden.
    ending = _Ending()
    ending.install()
    with Sampler(pid) as sampler:
        resident = ResidentWatch(sampler, interval, sharing=shared) if rss or shared else None
        history = History(sampler, resident=resident)
        if as_json:
            _watch_json(sampler, history, interval, count, kinds)
        elif sys.stdout.isatty():
            _watch_live(sampler, history, interval, count, kinds, ending)
        else:
            _watch_lines(sampler, history, interval, count)


def _watch_json(sampler, history, interval, count, kinds) -> None:
    from ..live.watch import (
        change_record,
        end_record,
        resident_record,
        run_watch,
        sharing_record,
        snapshot_record,
    )
    from ..names import to_json

    resident = history.resident

    def emit(record: dict) -> None:
        sys.stdout.write(to_json(record) + "\n")
        sys.stdout.flush()  # a reader (jq, a log) sees each record as it happens

    emit(snapshot_record(sampler, kinds, resident))
    if resident is not None and resident.with_sharing:
        emit(sharing_record(resident, kinds))

    def on_tick(tick, _sentences) -> None:
        record = change_record(tick, kinds, resident)
        if record is not None:
            emit(record)
        if resident is not None and resident.read_full:
            emit(resident_record(resident, kinds))
            sharing = sharing_record(resident, kinds) if resident.with_sharing else None
            if sharing is not None:
                emit(sharing)

    end = run_watch(sampler, history, interval, count, on_tick)
    emit(end_record(end, history))


def _watch_lines(sampler, history, interval, count) -> None:
    from ..live.watch import resident_words, run_watch, summary_lines
    from ..render.text import human_size, printable

    resident = history.resident
    every = "flat out" if interval == 0 else f"every {interval:g} s"
    out = sys.stdout
    held = f"{human_size(sampler.total)} mapped"
    if resident is not None:
        held += f", {human_size(resident.rss)} resident"
    out.write(
        f"watching PID {sampler.pid} ({printable(sampler.info.name)}): "
        f"{len(sampler.mappings)} mappings, {held}; sampling {every}\n"
    )
    out.flush()
    last = resident_words(resident.full_totals) if resident and resident.full_totals else None

    def on_tick(tick, sentences) -> None:
        nonlocal last
        lines = [printable(sentence) for sentence in sentences]
        if resident is not None and resident.read_full:
            words = resident_words(resident.full_totals)
            if words != last:  # as shown: a change below the shown precision is no news
                lines.append(words)
                last = words
        for line in lines:
            out.write(f"{tick.t:9.3f}s  {line}\n")
        if lines:
            out.flush()

    end = run_watch(sampler, history, interval, count, on_tick)
    for line in summary_lines(history, end):
        out.write(printable(line) + "\n")


def _watch_live(sampler, history, interval, count, kinds, ending: _Ending) -> None:
    import errno

    from rich.live import Live

    from ..live.watch import End, run_watch
    from ..render.live import LiveView, render_watch_summary

    console = make_console()
    view = LiveView(sampler, history, interval, kinds)
    drawn = -1.0
    hung_up = False
    live = Live(view, console=console, screen=True, auto_refresh=False)

    def on_tick(tick, _sentences) -> None:
        nonlocal drawn
        if tick.t - drawn >= 0.1:  # at most 10 redraws a second, however fast it samples
            with ending:
                live.refresh()
            drawn = tick.t

    try:
        with ending:  # into the full screen, and the first frame, whole
            live.start(refresh=True)
        end = run_watch(sampler, history, interval, count, on_tick)
    except KeyboardInterrupt:  # a signal during the first frame
        end = End(history.t, "interrupted", "interrupted")
    except OSError as err:  # a frame written as the terminal closed, before its SIGHUP
        if err.errno != errno.EIO:
            raise
        end, hung_up = End(history.t, "interrupted", "interrupted"), True
    finally:
        ending.ignore()
        try:
            live.stop()  # out of the full screen, the cursor shown again
        except OSError as err:
            if err.errno != errno.EIO:
                raise
            hung_up = True  # SIGHUP as the terminal closed: nothing left to give back
    if not hung_up:
        console.print(render_watch_summary(history, end))
