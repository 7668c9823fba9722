"""The risk check, crisis resources and what is said when it fires.

Runs on every user turn before anything else, in code, with the LLM, TTS and storage down.
Modules, in the order a turn meets them: ``text`` and ``patterns`` (layer 1, explicit
phrasings), ``judge`` over ``encoder`` (layer 2, trained), ``checker`` (one utterance's
level), ``context`` (the whole session), ``responses`` (what is said at each level),
``plan`` (the person's own safety plan) and ``resources`` (the verified crisis lines).
"""

from voicereflect.safety.checker import RiskChecker, RiskResult
from voicereflect.safety.patterns import PatternHit, check_patterns, segment, split_units
from voicereflect.safety.resources import CrisisLine, CrisisResources, all_checked_dates, crisis_resources
from voicereflect.safety.responses import crisis_message, spoken_crisis_message
from voicereflect.safety.text import Clause, normalise

__all__ = ["Clause", "CrisisLine", "CrisisResources", "PatternHit", "RiskChecker", "RiskResult", "all_checked_dates",
           "check_patterns", "crisis_message", "crisis_resources", "normalise", "segment", "spoken_crisis_message",
           "split_units"]
