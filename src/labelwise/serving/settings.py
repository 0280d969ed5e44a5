"""Per-deployment configuration of ``labelwise serve``: now defined in :mod:`labelwise.config`
(the ``serving:`` section of :class:`labelwise.config.Settings`), re-exported here for the
code that still imports it from this module. New code imports it from ``labelwise.config``."""

from __future__ import annotations

from labelwise.config import ROUTING_STRATEGIES, RoutingStrategy, ServingSettings

__all__ = ["ROUTING_STRATEGIES", "RoutingStrategy", "ServingSettings"]
