"""Test-time channels: degraded copies of a corpus (a simulated robot microphone)."""

from emovox.channels.degrade import channel_sources, degrade_corpus
from emovox.channels.robot import CHANNELS, RobotChannel, RobotChannelConfig, make_channel

__all__ = ["CHANNELS", "RobotChannel", "RobotChannelConfig", "channel_sources",
           "degrade_corpus", "make_channel"]
