"""Feature flags as the router reads them: the rules decided per request, and the live copy
of them each replica keeps. The optimizer (above the router) writes and checks them."""
