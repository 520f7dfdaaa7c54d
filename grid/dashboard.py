"""Start or join Ray for a grid run and tell the user how to open the Ray dashboard.

Ray >= 2.5x turns on token authentication for a new local cluster by default: the dashboard then
asks for a token in the browser. We never print the token itself (terminals end up in logs); we
print the command that shows it and where Ray keeps it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from hcld.errors import HcldError


@dataclass
class RaySession:
    address: str  # what we joined, or "local"
    dashboard_url: str | None  # http://127.0.0.1:8265 or None when off
    token_auth: bool
    cpus: float
    gpus: float

    def describe(self) -> list[str]:
        lines = [f"Ray: {self.address}, {self.cpus:g} CPU, {self.gpus:g} GPU"]
        if self.dashboard_url is None:
            lines.append("Ray dashboard: off")
            return lines
        lines.append(f"Ray dashboard: {self.dashboard_url}  (Jobs/Actors pages; the grid's trials "
                     f"are the ImplicitFunc actors, their logs under Logs)")
        if self.token_auth:
            where = os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")
            lines.append(f"  token authentication is on: when the page asks, paste the output of "
                         f"`ray get-auth-token` (the token lives in {where})")
        if self.dashboard_url.startswith(("http://127.0.0.1", "http://localhost")):
            lines.append("  from another machine: ssh -L 8265:127.0.0.1:8265 <this host>, then "
                         "open http://127.0.0.1:8265 there")
        return lines


def start_ray(*, address: str | None, dashboard: bool, verbose: bool,
              num_cpus: int | None = None) -> RaySession:
    """ray.init for a grid run: a new local Ray (dashboard on 127.0.0.1) or an existing cluster."""
    import ray
    from ray._private.authentication import authentication_utils

    # With ray:// the Tune loop runs on the head node and our progress lines arrive as its logs.
    client = bool(address) and address.startswith("ray://")
    quiet = {} if verbose else {"logging_level": logging.WARNING, "log_to_driver": client}
    if not verbose:  # describe() says the same about token auth, with what to do about it
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR)
    if address:
        # With ray:// Tune's driver loop runs in a job worker on the head: give it the same
        # output settings grid.runner sets for a local driver.
        env = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
        if not verbose:
            env["RAY_AIR_NEW_OUTPUT"] = "0"
        runtime_env = {"env_vars": env} if client else None
        try:
            ctx = ray.init(address=address, runtime_env=runtime_env, **quiet)
        except ConnectionError as exc:
            raise HcldError(
                f"cannot connect to Ray at {address}: {exc}. If the cluster uses token "
                f"authentication (Ray's default), set RAY_AUTH_MODE=token and make its token "
                f"available here (~/.ray/auth_token, or RAY_AUTH_TOKEN)") from exc
    else:
        # address="local": a new Ray of our own even when `ray start` left a cluster behind
        # (ray.init() would silently join that one); joining is what --address is for.
        ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard,
                       dashboard_host="127.0.0.1",
                       **quiet)
    url = getattr(ctx, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    resources = ray.cluster_resources()
    return RaySession(
        address=address or "local",
        dashboard_url=url if dashboard else None,
        token_auth=authentication_utils.is_token_auth_enabled(),
        cpus=resources.get("CPU", 0), gpus=resources.get("GPU", 0),
    )
