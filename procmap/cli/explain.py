"""`procmap explain FILE`: what an ELF file becomes in memory (and `--run`)."""

from __future__ import annotations

import click

from .base import cli, debug_option, make_console, print_json, show_picture


@cli.command(context_settings={"allow_interspersed_args": True})
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.option("--symbols", is_flag=True, help="List every object and function, by region.")
@click.option("--no-notes", is_flag=True, help="Leave out the explanation of each kind.")
@click.option(
    "--diagram",
    is_flag=True,
    help="Draw the load plan as the lesson's picture (with --run: the stopped process's).",
)
@click.option("--svg", "svg_to", metavar="FILE", help="Write the picture as a standalone SVG file.")
@click.option(
    "--html", "html_to", metavar="FILE", help="Write the picture as a standalone HTML page."
)
@click.option(
    "--run",
    is_flag=True,
    help="Run FILE (with ARGS after --), stop it, and show its real map beside the plan.",
)
@click.option(
    "--stop-at",
    type=click.Choice(["exit", "entry"]),
    default="exit",
    show_default=True,
    help="With --run: just before the program exits, or right after exec.",
)
@debug_option
def explain(
    file: str,
    args: tuple[str, ...],
    as_json: bool,
    symbols: bool,
    no_notes: bool,
    diagram: bool,
    svg_to: str | None,
    html_to: str | None,
    run: bool,
    stop_at: str,
):
    """What an ELF FILE becomes in memory: its load plan, in the lesson's terms.

    The file's identity and hardening, each PT_LOAD segment with the mappings
    it becomes and the kind of each part (text, rodata, data, bss), the
    sections by region, and the file's own variables with the reason each
    lands where it does.  With --run, the program is started (stdin and stdout
    passed through), stopped by ptrace, and its real map shown, tied back to
    the plan; it is always let go or killed afterwards.  --diagram draws the
    plan as the lesson's picture: the file's bands at their planned addresses
    (offsets from the load base, for a PIE), the heap, the mapping area and
    the stack where they will go at run time; --svg and --html write it.

    \b
    Examples:
      procmap explain ./a.out
      procmap explain ./a.out --symbols
      procmap explain ./a.out --diagram
      procmap explain ./a.out --svg plan.svg
      procmap explain /usr/lib/x86_64-linux-gnu/libc.so.6 --json
      procmap explain ./a.out --run -- arg1 arg2
      procmap explain ./a.out --run --stop-at entry --diagram
    """
    from ..views.explain import explain_elf

    if args and not run:
        raise click.UsageError("arguments for the program need --run")
    if diagram and symbols:
        raise click.UsageError("--diagram does not go with --symbols")
    exp = explain_elf(file)
    result = None
    if run:
        from ..views.run import run_and_stop

        result = run_and_stop(file, list(args), exp, stop_at=stop_at)

    def plan_or_run():
        from ..views.picture import map_picture, plan_picture

        if result is not None:
            return map_picture(result.map)
        return plan_picture(exp)

    def head():
        from ..render.explain import render_facts

        return [render_facts(exp)]

    if show_picture(plan_or_run, head, diagram, as_json, svg_to, html_to):
        return
    if result is not None:
        if as_json:
            print_json({**exp.to_dict(), "run": result.to_dict()})
            return
        from ..render.explain import render_run

        make_console().print(render_run(exp, result, notes=not no_notes))
        return
    if as_json:
        print_json(exp.to_dict())
        return
    from ..render.explain import render_explanation

    make_console().print(render_explanation(exp, symbols=symbols, notes=not no_notes))
