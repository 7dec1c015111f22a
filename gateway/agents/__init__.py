"""Agents working tickets by email: proof of identity, #commands, rights and ACLs, replies.

Importing this package registers the config loaders for ``agent_auth:`` (ticketgate.yaml) and
``conf/acl.d/*.yaml``. The pipeline steps live in ``gateway/routing.py`` (``sender``,
``agent_identity``, ``agent_commands``); ``gateway/apply.py`` acts on their verdicts.
"""
from gateway.agents import acl, identity  # noqa: F401 - registers the config extensions
