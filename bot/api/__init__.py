"""The ops API: the dispatch system feeds orders, routes, positions and events over HTTP."""
