"""`steward login`: a scoped registry credential from the token API, into docker's config."""

from __future__ import annotations

from pathlib import Path

import click

from steward_tools.credhelper import (
    ConfigUnreadable,
    TokenApiError,
    api_registry,
    caller_token,
    docker_login,
    fetch_token,
    for_local_registry,
    merge_docker_config,
)


@click.command()
@click.argument("registry")
@click.option("--repository", help="A repository the credential must cover.")
@click.option("--access", type=click.Choice(["pull", "push"]), default="pull", show_default=True)
@click.option("--api", envvar="STEWARD_API_URL", required=True, help="The API's base URL.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the credential into this docker config.json instead of running docker login.",
)
@click.option("--docker", "docker_command", default="docker", show_default=True, hidden=True)
@click.option(
    "--local-registry",
    envvar="STEWARD_LOCAL_REGISTRY",
    help="Log in to the embedded registry at this address (127.0.0.1:5000) instead of ECR's host.",
)
def login(
    registry: str,
    repository: str | None,
    access: str,
    api: str,
    config_path: Path | None,
    docker_command: str,
    local_registry: str | None,
) -> None:
    """Get a scoped credential for REGISTRY from the token API and log docker in with it.

    The caller's JWT comes from STEWARD_TOKEN, STEWARD_TOKEN_FILE or GitHub Actions' OIDC.
    """

    output = "docker-config" if config_path else "login"
    environ = {"STEWARD_LOCAL_REGISTRY": local_registry} if local_registry else {}
    try:
        body = fetch_token(
            api,
            api_registry(registry, environ),
            access=access,
            repository=repository,
            output=output,
            bearer=caller_token(),
        )
    except TokenApiError as error:
        raise click.ClickException(str(error)) from None
    if local_registry:
        body = for_local_registry(body, local_registry)
    if config_path:
        try:
            merge_docker_config(config_path, body)
        except ConfigUnreadable as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"wrote {', '.join(body['auths'])} to {config_path} (until {body['expiresAt']})")
        return
    status = docker_login(body, docker_command)
    if status:
        raise click.ClickException(f"docker login failed ({status})")
    click.echo(f"logged in to {body['proxyEndpoint']} until {body['expiresAt']}")
