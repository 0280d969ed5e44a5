"""prefect.yaml is the one description of the deployments; serve builds from it."""

from __future__ import annotations

import pytest

from deployments.prefect_yaml import load_deployments, substitute_env

ENV = {"LABELWISE_HOME": "/x", "LABELWISE_PROJECT": "p", "LABELWISE_CONFIG": "",
       "LABELWISE_PROPOSE_CRON": "0 6 * * *", "LABELWISE_RECONCILE_CRON": "*/15 * * * *"}


def test_every_deployment_points_at_a_flow_and_has_the_project():
    deployments = load_deployments(env=ENV)
    names = {d["name"] for d in deployments}
    assert names == {"propose", "learn", "reconcile", "closed-loop"}
    for d in deployments:
        path, _, attr = d["entrypoint"].partition(":")
        assert path.startswith("flows/") and attr
        assert d["parameters"]["params"]["project"] == "p"
    crons = {d["name"]: [s["cron"] for s in d.get("schedules") or []] for d in deployments}
    assert crons["propose"] == ["0 6 * * *"] and crons["reconcile"] == ["*/15 * * * *"]


def test_missing_variable_is_named():
    with pytest.raises(KeyError, match="needs environment variable NOPE"):
        substitute_env({"a": ["{{ $NOPE }}"]}, {})


def test_entrypoints_import():
    from deployments.serve_flows import import_flow

    for d in load_deployments(env=ENV):
        flow = import_flow(d["entrypoint"])
        assert hasattr(flow, "to_deployment")
