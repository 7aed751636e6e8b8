"""The simulator's run-time state: data source, weight limiter, faults and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from warehouse_assets.simulator import clock
from warehouse_assets.simulator.archive import ArchiveSource
from warehouse_assets.simulator.config import SimulatorConfig
from warehouse_assets.simulator.faults import Faults, FaultState
from warehouse_assets.simulator.klines import KlineSource
from warehouse_assets.simulator.market import SyntheticMarket
from warehouse_assets.simulator.protocol import used_weight_header
from warehouse_assets.simulator.stats import Stats
from warehouse_assets.simulator.symbols import spec_for
from warehouse_assets.simulator.synthetic import SyntheticSource
from warehouse_assets.simulator.weights import WeightLimiter

if TYPE_CHECKING:
    from warehouse_assets.simulator.ws import WsHub


@dataclass
class SimulatorState:
    """Shared by every route of the app."""

    config: SimulatorConfig
    source: KlineSource
    limiter: WeightLimiter
    faults: FaultState
    stats: Stats
    ws: WsHub | None = None  # the WebSocket stream endpoint, set by app.build_app

    @property
    def weight_header(self) -> str:
        return used_weight_header(self.config.window_seconds)

    def reset(self) -> None:
        """Clear faults (back to the start-up ones), weight counters, bans and statistics.

        The WebSocket settings, faults and counters and the clock offset go back to the start-up ones too.
        """
        self.faults.reset()
        self.limiter.reset()
        self.stats = Stats()
        clock_moved = clock.offset_ms() != self.config.clock_offset_ms
        clock.set_offset_ms(self.config.clock_offset_ms)
        if self.ws is not None:
            self.ws.reset()
            if clock_moved:
                self.ws.restart_feeds()


def build_state(config: SimulatorConfig) -> SimulatorState:
    """The state for a config: the archive source with --archive-dir, else the synthetic market."""
    source: KlineSource
    if config.archive_dir is not None:
        source = ArchiveSource(config.archive_dir)
    else:
        source = SyntheticSource(SyntheticMarket([spec_for(s) for s in config.symbols], config.seed))
    startup = Faults.from_json({"error_rate": config.error_rate, "delay_ms": config.delay_ms})
    return SimulatorState(
        config=config,
        source=source,
        limiter=WeightLimiter(config.weight_limit, config.window_seconds, config.ban_base_seconds),
        faults=FaultState(startup, config.seed),
        stats=Stats(),
    )
