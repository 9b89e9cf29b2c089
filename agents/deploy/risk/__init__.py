"""The one RiskLimiter for the simulator, vetting and live trading (numpy and numba only).

See docs/deploy.md for every limit, check, reason and the state machine.
"""

from pathlib import Path

from agents.deploy.risk.compile_cache import keyed_cache

with keyed_cache(Path(__file__).resolve().parent):
    from agents.deploy.risk import simulator_inputs as simulator_inputs
    from agents.deploy.risk.inputs import ACCOUNT_INPUT_DTYPE, ASSET_INPUT_DTYPE, RiskInputs
    from agents.deploy.risk.limiter import RiskLimiter, new_quotes
    from agents.deploy.risk.limits import RiskLimits
    from agents.deploy.risk.modes import TradingMode
    from agents.deploy.risk.reasons import Reason
    from agents.deploy.risk.state import TradingState, Transition
    from agents.deploy.risk.venue import VenueSpec

__all__ = [
    "ACCOUNT_INPUT_DTYPE",
    "ASSET_INPUT_DTYPE",
    "Reason",
    "RiskInputs",
    "RiskLimiter",
    "RiskLimits",
    "TradingMode",
    "TradingState",
    "Transition",
    "VenueSpec",
    "new_quotes",
]
