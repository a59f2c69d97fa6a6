"""The `nerve` command. Flags are parsed here, once, into typed settings; errors exit 2 with one line."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from control.api import columns, kinds
from control.api.meta import DEFAULT_NAMESPACE
from core.cli_settings import API_PORT
from nerve import cli_services, manifest_files, output, typer_settings, up_settings
from nerve.client import ApiError, Client, Unreachable

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Nerve: a Knative-Eventing-compatible event broker.")

DEFAULT_SERVER = f"http://127.0.0.1:{API_PORT}"
Server = Annotated[str, typer.Option("--server", envvar="NERVE_SERVER", help="Control API URL.")]
Namespace = Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace (default: default).")]
# As kubectl reads a kubeconfig: the token `nerve up` (or control) wrote into its state dir, found from the
# directory it was started in; --token / NERVE_TOKEN beat the file.
DEFAULT_TOKEN_FILE = Path(".nerve") / "token"
Token = Annotated[str | None, typer.Option("--token", envvar="NERVE_TOKEN", show_default=False,
                                           help="Control API bearer token (default: read from --token-file).")]
TokenFile = Annotated[Path, typer.Option("--token-file", envvar="NERVE_TOKEN_FILE",
                                         help="File holding the control API token (<state-dir>/token).")]


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _client(server: str, token: str | None, token_file: Path) -> Client:
    if token:
        return Client(server, token=_checked_token(token.strip(), "--token / NERVE_TOKEN"))
    try:
        text = token_file.read_text().strip()
    except FileNotFoundError:
        if token_file != DEFAULT_TOKEN_FILE:
            fail(f"--token-file {str(token_file)!r}: no such file")
        return Client(server)  # the server's 401 says where a token comes from
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--token-file {str(token_file)!r}: cannot read it: {exc}")
    return Client(server, token=_checked_token(text, f"--token-file {str(token_file)!r}"))


def _checked_token(token: str, where: str) -> str:
    # An HTTP header value: printable ASCII without spaces (a newline would be refused deep in http.client).
    if not token or not all("!" <= c <= "~" for c in token):
        fail(f"{where}: a token is printable ASCII without spaces")
    return token


def _place(resource: str, origins: list[str] | None) -> str:
    """The server names a manifest without usable metadata by its position; the CLI knows its file."""
    position = re.fullmatch(r"document (\d+)", resource)
    if position and origins and int(position[1]) <= len(origins):
        return origins[int(position[1]) - 1]
    return resource


def _warn(warnings: list[dict[str, Any]], origins: list[str] | None = None) -> None:
    """kubectl's warning lines: `Warning: Trigger/ns1/t1: unknown field "spec.brokr"` on stderr."""
    for w in warnings:
        resource = _place(str(w.get("resource") or ""), origins)
        typer.echo(f"Warning: {resource + ': ' if resource else ''}{w.get('message')}", err=True)


def _kind(name: str) -> kinds.Kind:
    try:
        return kinds.resolve(name)
    except kinds.UnknownKind as exc:
        fail(exc.message)


def _api_error(exc: ApiError, origins: list[str] | None = None) -> NoReturn:
    """Print a refused request's warnings and its errors, one line each; `origins` names the file and
    document of each manifest sent, for the errors the server can only place by position."""
    _warn(exc.body.get("warnings") or [], origins)
    details = exc.body.get("details") or []
    if details:
        for d in details:
            resource = _place(str(d.get("resource") or ""), origins)
            where = f"{resource}: " if resource else ""
            typer.echo(f"error: {where}{d.get('field') or '<manifest>'}: {d.get('reason')}", err=True)
        raise typer.Exit(2)
    fail(str(exc.body.get("reason") or exc), 1 if exc.status >= 500 else 2)


# ------------------------------------------------------------------------------------------ up


@app.command()
@typer_settings.options(up_settings.command_line())
def up(values: dict[str, Any]) -> None:
    """Run Nerve embedded: control plane, ingress and dispatcher in one process."""
    from core.runtime import run
    from nerve.up import run_up

    settings = up_settings.from_values(values)
    for problem in up_settings.problems(settings):
        fail(problem)
    try:
        run(lambda stop: run_up(settings, stop), telemetry=settings.telemetry, service="nerve")
    except OSError as exc:
        fail(f"cannot start: {exc}", 1)


# ------------------------------------------------------------------------------------------ apply / delete


def _read_manifests(paths: list[str], origins: list[str] | None = None) -> list[Any]:
    """Every document of the files (List items unpacked); `origins` gets "<file> document <n>" for each."""
    try:
        docs = manifest_files.read(paths)
    except manifest_files.ManifestError as exc:
        fail(str(exc))
    if origins is not None:
        origins.extend(d.origin for d in docs)
    return [d.manifest for d in docs]


Files = Annotated[list[str], typer.Option("--filename", "-f", help="File, directory, or - for stdin.")]


# kubectl's --validate values; true/false are its older spellings of strict/ignore.
_VALIDATE = {"strict": "Strict", "true": "Strict", "warn": "Warn", "ignore": "Ignore", "false": "Ignore"}


@app.command()
def apply(
    filename: Files,
    validate: Annotated[str, typer.Option(
        "--validate", help="Unknown fields: warn (apply, with a warning line), strict (refuse) or ignore.")] = "warn",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Create or update resources from Knative YAML (multi-document files and directories too)."""
    field_validation = _VALIDATE.get(validate.lower())
    if field_validation is None:
        fail(f"--validate {validate!r}: expected strict, warn or ignore")
    origins: list[str] = []
    manifests = _read_manifests(filename, origins)
    try:
        answer = _client(server, token, token_file).apply(manifests, field_validation)
    except ApiError as exc:
        _api_error(exc, origins)
    except Unreachable as exc:
        fail(str(exc), 1)
    _warn(answer.get("warnings") or [], origins)
    for r in answer["items"]:
        kind = kinds.for_manifest(r["apiVersion"], r["kind"])
        typer.echo(f"{kind.singular if kind else r['kind'].lower()}/{r['name']} {r['outcome']}")


@app.command()
def delete(
    kind: Annotated[str | None, typer.Argument(help="Kind, e.g. broker or triggers.")] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = None,
    filename: Annotated[list[str] | None, typer.Option("--filename", "-f")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Delete a resource by kind and name, or every resource in files (-f)."""
    targets: list[tuple[str, str, str]] = []
    if filename:
        for doc in _read_manifests(filename):
            if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
                fail("a manifest without metadata cannot be deleted")
            meta = doc["metadata"]
            _kind(str(doc.get("kind")))
            targets.append((str(doc.get("kind")), meta.get("namespace") or namespace or DEFAULT_NAMESPACE,
                            str(meta.get("name"))))
    elif kind and name:
        _kind(kind)
        targets.append((kind, namespace or DEFAULT_NAMESPACE, name))
    else:
        fail("give KIND NAME or -f FILE")
    client = _client(server, token, token_file)
    for target_kind, ns, target_name in targets:
        try:
            client.delete(target_kind, ns, target_name)
        except ApiError as exc:
            _api_error(exc)
        except Unreachable as exc:
            fail(str(exc), 1)
        typer.echo(f'{target_kind.lower()} "{target_name}" deleted')


# ------------------------------------------------------------------------------------------ get / describe


@app.command()
def get(
    kind: Annotated[str, typer.Argument(help="Kind: brokers, triggers, configmaps, services ...")],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    output_format: Annotated[str, typer.Option("--output", "-o", help="table, yaml or json.")] = "table",
    show_secrets: Annotated[bool, typer.Option(
        "--show-secrets",
        help="Show Secret values, and ConfigMap ones that look like credentials (redacted by default).")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """List resources, or show one, with their status; a category (`sources`) lists each of its kinds."""
    category = kinds.in_category(kind.lower()) if kinds.lookup(kind) is None else ()
    found = category[0] if category else _kind(kind)
    if output_format not in ("table", "yaml", "json", "wide"):
        fail(f"--output {output_format!r}: expected table, yaml or json")
    client = _client(server, token, token_file)
    ns = None if all_namespaces else (namespace or DEFAULT_NAMESPACE)
    if category:
        if name:
            fail(f"{kind!r} is a category of kinds; give a kind to get one by name, e.g. "
                 f"{category[0].kind.lower()} {name}")
        _get_category(client, category, ns, output_format, all_namespaces=all_namespaces)
        return
    try:
        items = ([client.get(kind, namespace or DEFAULT_NAMESPACE, name, show_secrets=show_secrets)] if name
                 else client.list_resources(kind, ns, show_secrets=show_secrets))
    except ApiError as exc:
        _api_error(exc)
    except Unreachable as exc:
        fail(str(exc), 1)
    if output_format in ("yaml", "json"):
        data: Any = items[0] if name else {"apiVersion": "v1", "kind": "List", "items": items}
        typer.echo(output.dump(data, output_format))
        return
    if not items:
        typer.echo(f"No resources found in {ns} namespace." if ns else "No resources found.", err=True)
        return
    typer.echo(output.table(found.columns, items, all_namespaces=all_namespaces))


def _prefixed(kind: kinds.Kind) -> Callable[[dict[str, Any]], str]:
    return lambda obj: f"{kind.singular}/{obj['metadata']['name']}"


def _get_category(client: Client, category: tuple[kinds.Kind, ...], ns: str | None, output_format: str, *,
                  all_namespaces: bool) -> None:
    """As `kubectl get sources`: one table per kind that has objects, names as `<kind>.<group>/<name>`."""
    found: list[tuple[kinds.Kind, list[dict[str, Any]]]] = []
    for kind in category:
        try:
            found.append((kind, client.list_resources(kind.plural, ns)))
        except ApiError as exc:
            _api_error(exc)
        except Unreachable as exc:
            fail(str(exc), 1)
    if output_format in ("yaml", "json"):
        everything = [item for _, items in found for item in items]
        typer.echo(output.dump({"apiVersion": "v1", "kind": "List", "items": everything}, output_format))
        return
    tables = []
    for kind, items in found:
        if items:
            named = columns.Column("NAME", _prefixed(kind))
            tables.append(output.table([named if c is columns.NAME else c for c in kind.columns], items,
                                       all_namespaces=all_namespaces))
    if not tables:
        typer.echo(f"No resources found in {ns} namespace." if ns else "No resources found.", err=True)
        return
    typer.echo("\n\n".join(tables))


@app.command()
def describe(
    kind: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    namespace: Namespace = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Show one resource with its spec and status conditions."""
    _kind(kind)
    try:
        obj = _client(server, token, token_file).get(kind, namespace or DEFAULT_NAMESPACE, name)
    except ApiError as exc:
        _api_error(exc)
    except Unreachable as exc:
        fail(str(exc), 1)
    typer.echo(output.describe(obj))
    if obj.get("kind") == "EventType":
        typer.echo(output.eventtype_trigger(obj))


# ------------------------------------------------------------------------------------------ logs


def _matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _parse_selector(text: str) -> dict[str, str]:
    selector: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            fail(f"--selector {text!r}: expected key=value[,key=value] (equality only)")
        selector[key.strip().rstrip("=")] = value.strip()
    return selector


def _log_pods(client: Client, target: str | None, selector: str | None, namespace: str) -> list[str]:
    """The Pods `nerve logs` reads, as kubectl picks them: a Pod by name, a Deployment's or Job's first Pod,
    or every Pod a selector matches."""
    if selector:
        wanted = _parse_selector(selector)
        pods = client.list_resources("pods", namespace)
        return [p["metadata"]["name"] for p in pods if _matches(p["metadata"].get("labels") or {}, wanted)]
    if not target:
        fail("give POD, KIND/NAME or -l key=value")
    kind_name, sep, name = target.partition("/")
    if not sep:
        kind_name, name = "pod", target
    kind = _kind(kind_name)
    if kind.kind == "Pod":
        client.get("pods", namespace, name)  # not found is said as kubectl says it
        return [name]
    if kind.kind not in ("Deployment", "Job"):
        fail(f"cannot get logs of a {kind.kind}: give a Pod, Deployment or Job")
    obj = client.get(kind.plural, namespace, name)
    uid = obj["metadata"]["uid"]
    pods = [p for p in client.list_resources("pods", namespace)
            if any(ref.get("uid") == uid for ref in p["metadata"].get("ownerReferences") or [])]
    if not pods:
        fail(f"{kind.kind.lower()}/{name} has no pods")
    return [sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))[-1]["metadata"]["name"]]


@app.command()
def logs(
    target: Annotated[str | None, typer.Argument(help="POD, pod/NAME, deployment/NAME or job/NAME.")] = None,
    namespace: Namespace = None,
    selector: Annotated[str | None, typer.Option("--selector", "-l",
                                                 help="Pods with these labels (key=value).")] = None,
    container: Annotated[str | None, typer.Option("--container", "-c", help="Container (default: the first).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new output.")] = False,
    tail: Annotated[int | None, typer.Option(
        "--tail", help="Last N lines (default all; 10 per Pod with --selector, as kubectl).")] = None,
    prefix: Annotated[bool, typer.Option("--prefix", help="Start each line with [pod/NAME].")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Print a local workload's output (embedded mode), like kubectl logs."""
    import sys
    import threading

    client = _client(server, token, token_file)
    ns = namespace or DEFAULT_NAMESPACE
    if tail is not None and tail < -1:
        fail(f"--tail {tail}: expected -1 (all) or a number of lines")
    lines = tail if tail is not None else (10 if selector else None)
    try:
        pods = _log_pods(client, target, selector, ns)
    except ApiError as exc:
        _api_error(exc)
    except Unreachable as exc:
        fail(str(exc), 1)
    if not pods:
        typer.echo(f"No resources found in {ns} namespace.", err=True)
        return
    lock = threading.Lock()
    problems: list[str] = []

    def show(pod: str) -> None:
        label = (f"[pod/{pod}/{container}] " if container else f"[pod/{pod}] ").encode() if prefix else b""
        pending = b""
        try:
            for chunk in client.logs(ns, pod, container=container, tail=None if lines == -1 else lines,
                                     follow=follow):
                pending += chunk
                *done, pending = pending.split(b"\n")
                if done:
                    with lock:
                        sys.stdout.buffer.write(b"".join(label + line + b"\n" for line in done))
                        sys.stdout.buffer.flush()
            if pending:
                with lock:
                    sys.stdout.buffer.write(label + pending)
                    sys.stdout.buffer.flush()
        except ApiError as exc:
            problems.append(str(exc.body.get("reason") or exc))
        except Unreachable as exc:
            problems.append(str(exc))

    if follow and len(pods) > 1:
        threads = [threading.Thread(target=show, args=(pod,), daemon=True) for pod in pods]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for pod in pods:
            show(pod)
    if problems:
        fail(problems[0], 1)


# ------------------------------------------------------------------------------------------ send / display


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> int | None:
    """`1h`, `30m`, `90s`, `1h30m` (kubectl's --duration spelling) as whole seconds; None when it is not one."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        return None
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@app.command()
def token(
    audience: Annotated[str | None, typer.Option(
        "--audience", help="The audience the token is for: the Broker's or channel's status.address.audience.",
        show_default=False)] = None,
    subject: Annotated[str | None, typer.Option(
        "--subject", help="The token's sub (default: system:serviceaccount:<the audience's namespace>:default).",
        show_default=False)] = None,
    expires: Annotated[str, typer.Option("--expires", help="Lifetime, e.g. 1h, 30m, 90s (at most 24h).")] = "1h",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Print a JWT signed by Nerve's OIDC issuer, for producers sending to a Broker or channel (authentication-oidc)."""
    if not audience or not audience.strip():
        fail("--audience is required: the status.address.audience of the Broker or channel the token is for "
             "(nerve get broker NAME -o yaml shows it)")
    seconds = parse_duration(expires)
    if seconds is None or seconds <= 0:
        fail(f"--expires {expires!r}: expected a duration such as 1h, 30m or 90s")
    try:
        answer = _client(server, token, token_file).token(audience, subject, seconds)
    except ApiError as exc:
        _api_error(exc)
    except Unreachable as exc:
        fail(str(exc), 1)
    typer.echo(answer["token"])


@app.command()
def send(
    url: Annotated[str, typer.Argument(help="A Broker URL, e.g. http://127.0.0.1:8080/default/default.")],
    event_type: Annotated[str, typer.Option("--type", help="ce-type")],
    source: Annotated[str, typer.Option(help="ce-source")],
    data: Annotated[str | None, typer.Option(help="The event data.")] = None,
    event_id: Annotated[str | None, typer.Option("--id", help="ce-id (default: a UUID).")] = None,
    content_type: Annotated[str, typer.Option(help="datacontenttype of --data.")] = "application/json",
    extension: Annotated[list[str] | None, typer.Option("--ext", "-e", help="Extension name=value.")] = None,
    structured: Annotated[bool, typer.Option(help="Send in structured mode instead of binary.")] = False,
) -> None:
    """Send one CloudEvent (a convenience producer)."""
    from core.errors import InvalidEvent
    from core.events import validate
    from nerve.send import build, describe_answer
    from nerve.send import send as do_send

    extensions: dict[str, str] = {}
    for item in extension or []:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--ext {item!r}: expected name=value")
        extensions[key] = value
    event = build(event_type, source, data, event_id=event_id, content_type=content_type, extensions=extensions)
    try:
        validate(event.attributes)
    except InvalidEvent as exc:
        fail(f"{exc.field}: {exc.reason}")
    try:
        status, body = do_send(url, event, structured=structured)
    except OSError as exc:
        fail(f"cannot reach {url}: {getattr(exc, 'reason', exc)}", 1)
    if 200 <= status < 300:
        typer.echo(f"{status} {event.id}")
        return
    fail(describe_answer(status, body), 1)


@app.command()
def display(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Print every CloudEvent received, like Knative's event_display."""
    from core.runtime import run
    from nerve.display import run_display

    try:
        run(lambda stop: run_display(host, port, stop))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}", 1)


@app.command("run")
def run_bound(
    binding: Annotated[str, typer.Option("--binding", help="The SinkBinding whose sink the program sends to.")],
    command: Annotated[list[str] | None, typer.Argument(help="The program and its arguments, after --.")] = None,
    namespace: Namespace = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Run a program with a SinkBinding's K_SINK and K_CE_OVERRIDES, as a bound workload gets them."""
    from nerve.run import NotBound, binding_env
    from nerve.run import run as run_program

    if not command:
        fail("no program to run: nerve run --binding NAME [-n NAMESPACE] -- CMD ARGS...")
    ns = namespace or DEFAULT_NAMESPACE
    try:
        env = binding_env(_client(server, token, token_file).get("sinkbinding", ns, binding))
    except ApiError as exc:
        _api_error(exc)
    except Unreachable as exc:
        fail(str(exc), 1)
    except NotBound as exc:
        fail(str(exc))
    try:
        code = run_program(command, env)
    except OSError as exc:
        fail(f"cannot run {command[0]!r}: {exc.strerror or exc}", 127)
    raise typer.Exit(code)


cli_services.register(app)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
