"""The exchange side of live trading: servers that speak a venue's protocol, and the fault proxy
that sits between a client and them."""
