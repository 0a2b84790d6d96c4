"""The OCPP 1.6J gateway: real chargers in (see ../shared/DESIGN.md and issue 12).

    mapping     pure: OCPP payloads -> events of our contract
    passwords   slow hashes of charger passwords (security profile 1)
    registry    chargers and minted transaction ids in PostgreSQL
    publisher   Kafka with acks=all, awaited from the event loop
    server      the WebSocket server: handshake, one conversation per charger, shutdown
    run         the `evmonitor gateway` role: settings in, serve until SIGTERM

The gateway is a room above the core: it imports the contract, config, names, errors and
storage helpers, and nothing of workers/, beat/, the stack or the CLI.
"""

from evmonitor.gateway.mapping import ChargerProfile, Readings, StartRequest, Transaction, Unreadable
from evmonitor.gateway.registry import Charger, Registry

__all__ = ["Charger", "ChargerProfile", "Readings", "Registry", "StartRequest", "Transaction", "Unreadable"]
