"""CLI commands of the recommender and the simulators: chat, simulate, eval crs, eval simulator, app."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from importlib import resources
from pathlib import Path

import typer

from convoforge.app.cli import app, err, eval_app, out, ray_option, settings
from convoforge.errors import ConvoforgeError
from convoforge.llm.ports import bind_port


def default_catalog() -> Path:
    """ReDial's catalogue from the reference data when present, else the small shipped sample."""
    data = Path(os.environ.get("CONVOFORGE_DATA", "../shared/data")) / "redial" / "id2info.json"
    if data.is_file():
        return data
    return Path(str(resources.files("convoforge.agents.recommender").joinpath("data/sample_movies.jsonl")))


def embedder_option() -> Path | None:
    """The --embedder option every recommender command takes."""
    return typer.Option(None, help="A tuned embedder folder (`convoforge train retriever`); default: MiniLM.")


def train_option() -> list[Path]:
    """The --train option every recommender command takes."""
    return typer.Option(
        [],
        "--train",
        help="ReDial-format training dialogues (repeatable): learn co-mention, the recommended prior and the fusion.",
    )


def _check_train(train: list[Path] | None) -> None:
    """A one-line error for a --train file that is not there."""
    for path in train or []:
        if not path.is_file():
            raise ConvoforgeError(f"no training dialogues at {path}")


def _check_embedder(embedder: Path | None) -> None:
    """A one-line error for a folder that holds no sentence-transformers model."""
    if embedder is not None and not any((embedder / f).is_file() for f in ("modules.json", "config.json")):
        raise ConvoforgeError(f"{embedder} is not a sentence-transformers folder")


def _agent(
    catalog: Path | None,
    popularity: Path | None,
    use_llm: bool,
    store=None,
    embedder: Path | None = None,
    train: list[Path] | None = None,
):
    return _recipe(catalog, popularity, use_llm, embedder, train).build(store)


def _recipe(
    catalog: Path | None,
    popularity: Path | None,
    use_llm: bool,
    embedder: Path | None = None,
    train: list[Path] | None = None,
):
    """The checked, picklable recipe of the recommender the options describe."""
    from convoforge.agents.recommender.agent import AgentRecipe

    _check_embedder(embedder)
    _check_train(train)
    return AgentRecipe(
        catalog=str(catalog or default_catalog()),
        popularity=str(popularity) if popularity else None,
        embedder=str(embedder) if embedder else None,
        train=[str(t) for t in train or []],
        model=settings.model,
        base_url=settings.base_url,
        use_llm=use_llm,
    )


@app.command()
def chat(
    user: str = typer.Option("anonymous", "--user", help="User id (a MovieLens userId with --history)."),
    catalog: Path | None = typer.Option(None, help="Catalogue: id->record .json, MovieLens .csv or .jsonl."),
    history: Path | None = typer.Option(None, help="MovieLens ratings.csv to build the user's profile from."),
    popularity: Path | None = typer.Option(None, help="MovieLens ratings.csv used as a popularity prior."),
    llm: bool = typer.Option(True, help="Use the LLM manager and ranker (off: retrieval and rules only)."),
    embedder: Path | None = embedder_option(),
    train: list[Path] = train_option(),
) -> None:
    """Chat with the recommender in the terminal (empty line or Ctrl-D ends).

    Example: convoforge chat --user 15 --history ../shared/data/movielens/ratings.csv
    """
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    from convoforge.agents.recommender.profile import movielens_history, summarise_history
    from convoforge.llm.local import cache_root

    async def loop() -> None:
        cache_root().mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteStore.from_conn_string(str(cache_root() / "profiles.sqlite")) as store:
            await store.setup()
            agent, model = _agent(catalog, popularity, llm, store, embedder, train)
            if history:
                profile = await summarise_history(model, movielens_history(history, user))
                await agent.set_profile(user, profile)
                out.print(f"[dim]profile of user {user}: {profile}[/]")
            session = uuid.uuid4().hex[:8]
            while True:
                try:
                    text = input("you> ").strip()
                except EOFError:
                    break
                if not text:
                    break
                state = await agent.chat(session, text, user_id=user)
                out.print(f"[bold]recommender>[/] {state['reply']}", highlight=False)

    asyncio.run(loop())


@app.command()
def simulate(
    out_dir: Path = typer.Option(..., "--out", help="Output folder (a Hugging Face dataset with a card)."),
    n: int = typer.Option(10, "--n", min=1, help="Sessions to simulate."),
    catalog: Path | None = typer.Option(None, help="Catalogue the targets come from."),
    turns: Path | None = typer.Option(None, help="iEvaLM turns file: take targets from its `rec` items."),
    holdout: Path | None = typer.Option(None, help="iEvaLM turns file whose targets are never simulated."),
    popularity: Path | None = typer.Option(None, help="MovieLens ratings.csv: draw targets by popularity."),
    histories: Path | None = typer.Option(
        None, help="MovieLens ratings.csv: each user is a real rater; the goal is a film they liked, others they name."
    ),
    name_related: int = typer.Option(
        0, min=0, help="Each user names this many catalogue films related to the goal (franchise, cast, genre, era)."
    ),
    embedder: Path | None = embedder_option(),
    train: list[Path] = train_option(),
    max_turns: int = typer.Option(5, min=1, help="Most agent turns per session."),
    simulator: str = typer.Option("llm", help="llm (the model writes the user's turns) or template."),
    agent_llm: bool = typer.Option(False, help="Let the recommender use the LLM manager and ranker."),
    seed: int = typer.Option(0, help="Seed of the session plans and of every simulated user's sampled turn."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
    ray: str | None = ray_option("the sessions"),
    workers: int | None = typer.Option(None, min=1, help="Ray workers (default: one per CPU of the cluster)."),
    shard_size: int = typer.Option(0, min=0, help="Sessions per Ray shard (0: about four shards per worker)."),
) -> None:
    """Simulated users talk to the recommender; write labelled sessions as a dataset.

    Example: convoforge simulate --n 20 --simulator template --out out/sessions
    """
    from convoforge.simulators.run import simulate_sessions
    from convoforge.simulators.style import SeekerStyle

    if simulator not in {"llm", "template"}:
        raise ConvoforgeError(f"--simulator must be llm or template, not {simulator!r}")
    if out_dir.exists() and not force:
        raise ConvoforgeError(f"{out_dir} exists; pass --force to replace it")
    if histories and turns:
        raise ConvoforgeError("--histories and --turns both choose the targets; pass one")
    if histories and name_related:
        raise ConvoforgeError("--histories users name their own liked films; --name-related is for catalogue goals")
    agent, model = _agent(catalog, popularity, agent_llm, embedder=embedder, train=train)
    plan = {
        "turns": turns,
        "holdout": holdout,
        "popularity": popularity is not None,
        "histories": histories,
        "related": name_related,
        "style": SeekerStyle.from_dialogues(train) if train else None,  # real seekers' phrasing
    }
    on_ray = None
    if ray:
        recipe = _recipe(catalog, popularity, agent_llm, embedder, train)
        on_ray = {"address": ray, "workers": workers, "shard_size": shard_size, "recipe": recipe}
    summary = asyncio.run(
        simulate_sessions(
            agent, model if simulator == "llm" else None, n, out_dir, plan, max_turns, seed, force, ray=on_ray
        )
    )
    typer.echo(json.dumps(summary))


@eval_app.command("crs")
def eval_crs(
    turns: Path = typer.Option(..., help="iEvaLM-format turns (ReDial valid_turns.jsonl)."),
    catalog: Path = typer.Option(..., help="The catalogue the `rec` names refer to."),
    mode: str = typer.Option("original", help="original or interactive."),
    k: str = typer.Option("1,10,50", help="Cut-offs, comma separated."),
    limit: int | None = typer.Option(None, min=1, help="Evaluate only the first N turns."),
    popularity: Path | None = typer.Option(None, help="MovieLens ratings.csv as a popularity prior."),
    simulator: str = typer.Option("template", help="interactive: llm or template (attribute mode)."),
    rounds: int = typer.Option(5, min=1, help="interactive: most rounds."),
    embedder: Path | None = embedder_option(),
    train: list[Path] = train_option(),
    versus: str | None = typer.Option(
        None, help="Also run this embedder folder (or `base`, MiniLM) on the same turns; add a paired McNemar test."
    ),
    whole_agent: bool = typer.Option(
        False, "--agent", help="Run the whole graph (manager, retrieval, ranker) with --model; retrieval beside it."
    ),
    rrf: bool = typer.Option(
        False, "--versus-rrf", help="With --train: also run today's hand-set fusion on the same turns (paired test)."
    ),
    manager: str | None = typer.Option(
        None, help="--agent: who picks the action, llm or rules (default: as measured for the model)."
    ),
    ranker: str | None = typer.Option(
        None, help="--agent: who orders the top items, llm or retrieval (default: as measured for the model)."
    ),
) -> None:
    """Recall@k of the recommender on iEvaLM turns, original or with a simulated user.

    Example: convoforge eval crs --turns redial/valid_turns.jsonl --catalog redial/id2info.json --mode original
    """
    from convoforge.simulators.evaluate_crs import evaluate, load_turns, paired

    if mode not in {"original", "interactive"}:
        raise ConvoforgeError(f"--mode must be original or interactive, not {mode!r}")
    try:
        ks = sorted({int(x) for x in k.split(",")})
    except ValueError as exc:
        raise ConvoforgeError(f"--k must be integers like 1,10,50, not {k!r}") from exc
    other = None if versus in (None, "base") else Path(versus)
    _check_embedder(other)
    if rrf and not train:
        raise ConvoforgeError("--versus-rrf compares the learned fusion with today's; it needs --train")
    if whole_agent and (versus or rrf):
        raise ConvoforgeError("--agent already reports retrieval beside the whole agent; drop --versus/--versus-rrf")
    roles = {}
    for name, value, other_side in (("manager", manager, "rules"), ("ranker", ranker, "retrieval")):
        if value is not None and value not in {"llm", other_side}:
            raise ConvoforgeError(f"--{name} must be llm or {other_side}, not {value!r}")
        if value is not None and not whole_agent:
            raise ConvoforgeError(f"--{name} sets a part of the whole agent; add --agent")
        if value is not None:
            roles[f"llm_{name}"] = value == "llm"
    agent, model = _agent(catalog, popularity, use_llm=False, embedder=embedder, train=train)
    rival = None
    if versus:  # same catalogue and prior, already loaded; only the embedder differs
        from convoforge.agents.recommender.agent import RecommenderAgent
        from convoforge.agents.recommender.retrieval import Retriever
        from convoforge.llm.embeddings import load_embedder

        base = agent.retriever
        vectors = load_embedder(str(other)) if other else load_embedder()
        rival = RecommenderAgent(model, Retriever(base.catalog, vectors, base.popularity), use_llm=False)
    if rrf:  # the same retriever without the learned ranker
        from convoforge.agents.recommender.agent import RecommenderAgent
        from convoforge.agents.recommender.retrieval import Retriever

        base = agent.retriever
        rival = RecommenderAgent(model, Retriever(base.catalog, base.embedder, base.popularity), use_llm=False)
    if whole_agent:
        from convoforge.agents.recommender.agent import GraphRecommender, RecommenderAgent

        rival, agent = agent, GraphRecommender(RecommenderAgent(model, agent.retriever, use_llm=True, roles=roles))
    records = load_turns(turns, agent.retriever.catalog, limit)
    if not records:
        raise ConvoforgeError(f"no turn in {turns} has a target in the catalogue")
    llm = model if (mode == "interactive" and simulator == "llm") else None
    report = asyncio.run(evaluate(agent, agent.retriever.catalog, records, ks, mode, llm, rounds, keep_hits=True))
    report["embedder"] = str(embedder) if embedder else "all-MiniLM-L6-v2"
    report["fusion"] = "learned (--train)" if train else "reciprocal rank (hand-set weights)"
    if whole_agent:
        parts = agent.agent.roles
        who = ("llm" if parts["llm_manager"] else "rules", "llm" if parts["llm_ranker"] else "retrieval order")
        report["agent"] = f"whole graph on {settings.model}: manager {who[0]}, ranker {who[1]}"
    ours = report.pop("hits")
    if rival is not None:
        theirs = asyncio.run(evaluate(rival, agent.retriever.catalog, records, ks, mode, llm, rounds, keep_hits=True))
        if whole_agent:
            label = {"retrieval only": "the same retriever, no manager or ranker"}
        elif rrf:
            label = {"fusion": "reciprocal rank (hand-set weights)"}
        else:
            label = {
                "embedder": str(other) if other else "all-MiniLM-L6-v2",
                "fusion": "reciprocal rank (hand-set weights)",
            }
        report["versus"] = {**label, **{f"recall@{k}": theirs[f"recall@{k}"] for k in ks}}
        report["paired"] = paired(ours, theirs["hits"], ks)
    typer.echo(json.dumps(report))


@eval_app.command("simulator")
def eval_simulator(
    sessions: Path = typer.Option(..., help="A dataset written by `convoforge simulate`."),
    dialogs: Path = typer.Option(..., help="Real dialogues (ReDial valid_dialogs.jsonl)."),
    folds: int = typer.Option(5, min=2, help="Cross-validation folds."),
    seed: int = typer.Option(0, help="Sampling seed."),
) -> None:
    """Realism (a real-vs-simulated discriminator; 0.5 = indistinguishable) and intent adherence.

    Example: convoforge eval simulator --sessions out/sessions --dialogs redial/valid_dialogs.jsonl
    """
    from convoforge.simulators.realism import realism_report

    typer.echo(json.dumps(realism_report(sessions, dialogs, folds, seed)))


@app.command("app")
def run_app(
    port: int = typer.Option(8501, min=1, max=65535, help="Port."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    catalog: Path | None = typer.Option(None, help="Catalogue for the recommender."),
    embedder: Path | None = embedder_option(),
    train: list[Path] = train_option(),
) -> None:
    """Start the Streamlit app: chat with the recommender, browse generated datasets.

    Example: convoforge app --port 8501
    """
    script = Path(__file__).with_name("Recommender.py")
    env = dict(os.environ, CONVOFORGE_MODEL=settings.model, CONVOFORGE_CATALOG=str(catalog or default_catalog()))
    if embedder:
        env["CONVOFORGE_EMBEDDER"] = str(embedder.resolve())
    _check_train(train)
    if train:
        env["CONVOFORGE_TRAIN"] = os.pathsep.join(str(p.resolve()) for p in train)
    bind_port(host, port).close()  # taken: one line now, not Streamlit's after "convoforge app on ..."
    err.print(f"convoforge app on http://{host}:{port}")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)  # streamlit takes this process over: stopping it stops the server
