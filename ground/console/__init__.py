"""The operator's web console (kind ``ground.console``): a live view of the ground and, through it, the lander.

Rooms as in every component: :mod:`.interface` (table and kind), the I/O-free logic
(:mod:`.model`: what the page shows, fed bus messages; :mod:`.archive_view`: the ground's
archive, read-only, for products, events, parameter history, commands, transfers and what is
missing; :mod:`.desk`: commands checked and the hazardous guard; :mod:`.shelf`: the products'
images; :mod:`.linkview`: contact windows), :mod:`.app` (the ASGI routes), :mod:`.commands` and
:mod:`.process` (the bus, the ground's command port, the HTTP server). The page itself is
plain HTML, JS and CSS in ``static/`` (package data; nothing fetched from elsewhere).
"""
