"""Agents working tickets by email: proof of identity (identity.py), ``#commands``
(mail_commands.py), rights and ACLs (acl.py), the agent's own words in a reply (quoting.py).

The pipeline steps live in ``gateway/routing.py`` (``sender``, ``agent_identity``,
``agent_commands``); ``gateway/apply.py`` applies the accepted commands and
``notifier/agent_reply.py`` sends the reply. Their config sections (``agent_auth:``,
``conf/acl.d``) are put in place by ``gateway/app.py``.
"""
