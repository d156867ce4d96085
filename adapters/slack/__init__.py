"""Slack: slack-bolt in socket or http mode.

One package per platform, with the same rooms as ``adapters.telegram``: ``adapter`` (lifecycle, inbound
events), ``normalize`` (event -> Job with an Incoming), ``answer`` (streaming and final rendering),
``markup`` (Markdown -> mrkdwn, splitting), ``errors`` (Web API failures).
"""

from adapters.slack.adapter import SlackAdapter, build

__all__ = ["SlackAdapter", "build"]
